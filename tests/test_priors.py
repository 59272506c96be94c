import json

import pytest
import torch

from genprior.errors import CheckpointError, NonFiniteError, ShapeError
from genprior.priors import SHIPPED, VAE, VAEConfig, load_generator, save_checkpoint
from genprior.priors.checkpoint import CONFIG, WEIGHTS
from genprior.priors.training import STATE, TrainConfig, evaluate_elbo, train_vae


def test_vae_shapes_and_range():
    model = VAE(VAEConfig(latent_dim=3, hidden=(16, 8), image_shape=(1, 8, 8)))
    with torch.no_grad():
        x = model(torch.randn(5, 3))
    assert x.shape == (5, 1, 8, 8)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    mean, log_var = model.encode(x)
    assert mean.shape == log_var.shape == (5, 3)
    assert model.elbo(x).shape == (5,)


def test_default_vae_is_the_csgm_architecture():
    model = VAE()
    widths = [layer.out_features for layer in model.decoder if hasattr(layer, "out_features")]
    assert [model.latent_dim, *widths] == [20, 500, 500, 784]


def test_generator_rejects_bad_latents():
    model = VAE(VAEConfig(latent_dim=3, hidden=(4,), image_shape=(1, 2, 2)))
    with pytest.raises(ShapeError, match=r"z must have shape \(B, 3\).*\(5, 4\)"):
        model(torch.zeros(5, 4))
    with pytest.raises(NonFiniteError):
        model(torch.full((1, 3), float("nan")))
    with pytest.raises(ShapeError, match="x must have shape"):
        model.encode(torch.zeros(2, 1, 3, 3))


def test_elbo_is_exact_for_a_known_case():
    # With zero weights the decoder outputs sigmoid(0) = 0.5 everywhere and the posterior is
    # N(0, I): the ELBO is then exactly -D log 2 - KL(N(0, I) || N(0, I)) = -D log 2.
    model = VAE(VAEConfig(latent_dim=2, hidden=(3,), image_shape=(1, 2, 2)))
    for param in model.parameters():
        torch.nn.init.zeros_(param)
    x = torch.rand(4, 1, 2, 2)
    expected = -4 * torch.log(torch.tensor(2.0))
    torch.testing.assert_close(model.elbo(x), expected.expand(4))


def test_checkpoint_round_trip(tmp_path):
    model = VAE(VAEConfig(latent_dim=3, hidden=(8,), image_shape=(1, 4, 4)))
    save_checkpoint(model, tmp_path, {"command": "test"})
    loaded = load_generator(tmp_path)
    z = torch.randn(2, 3)
    torch.testing.assert_close(loaded(z), model(z))
    assert loaded.meta["command"] == "test"
    assert not any(param.requires_grad for param in loaded.parameters())


def _saved(tmp_path):
    model = VAE(VAEConfig(latent_dim=3, hidden=(8,), image_shape=(1, 4, 4)))
    save_checkpoint(model, tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / WEIGHTS).unlink(), "model.safetensors is missing"),
        (lambda f: (f / CONFIG).unlink(), "config.json is missing"),
        (lambda f: (f / CONFIG).write_text("{"), "not valid JSON"),
        (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:-100]), "truncated"),
        (lambda f: _edit_config(f, latent_dim=5), r"should have shape .*received"),
        (lambda f: _edit_config(f, hidden=[8, 8]), "missing"),
        (lambda f: _edit_config(f, latent_dim=-1), "bad architecture"),
    ],
)
def test_damaged_checkpoints_are_rejected(tmp_path, damage, message):
    folder = _saved(tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        load_generator(folder)


def _edit_config(folder, **changes):
    config = json.loads((folder / CONFIG).read_text())
    config["architecture"].update(changes)
    (folder / CONFIG).write_text(json.dumps(config))


def test_expectations_are_checked(tmp_path):
    folder = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="latent size 3, expected 20"):
        load_generator(folder, latent_dim=20)
    with pytest.raises(CheckpointError, match=r"output shape \(1, 4, 4\), expected"):
        load_generator(folder, output_shape=(1, 28, 28))
    with pytest.raises(CheckpointError, match="not an existing folder"):
        load_generator(tmp_path / "absent")


def test_shipped_checkpoint_loads_and_decodes():
    model = load_generator("mnist-vae", latent_dim=20, output_shape=(1, 28, 28))
    x = model(torch.randn(4, 20))
    assert x.shape == (4, 1, 28, 28)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert model.meta["command"].startswith("genprior") and "train vae" in model.meta["command"]
    assert model.meta["training"]["epochs_done"] == model.meta["training"]["epochs"]
    assert SHIPPED["mnist-vae"].is_dir()


def test_shipped_checkpoint_matches_mnist_and_its_elbo(mnist):
    model = load_generator("mnist-vae")
    assert model.meta["data"]["fingerprint"] == mnist.fingerprint
    elbo = evaluate_elbo(model, mnist.tensor("test", slice(0, 2000)))
    assert elbo == pytest.approx(model.meta["training"]["test_elbo"], abs=3.0)
    assert elbo > -110


def test_training_improves_the_elbo(digits, tiny_vae_dir):
    trained = load_generator(tiny_vae_dir)
    untrained = VAE(trained.config)
    test = digits.tensor("test")
    assert evaluate_elbo(trained, test) > evaluate_elbo(untrained, test) + 5


def test_extending_a_run_equals_the_longer_run(tmp_path, digits):
    config = TrainConfig(epochs=2, batch_size=100, latent_dim=2, hidden=(16,), seed=3)
    straight = train_vae(config, digits, tmp_path / "straight")
    train_vae(TrainConfig(**{**config.__dict__, "epochs": 1}), digits, tmp_path / "extended")
    extended = train_vae(config, digits, tmp_path / "extended")
    assert extended["history"] == [
        {**r, "seconds": e["seconds"]} for r, e in zip(straight["history"], extended["history"])
    ]
    other = TrainConfig(**{**config.__dict__, "lr": 0.01})
    with pytest.raises(CheckpointError, match="other settings"):
        train_vae(other, digits, tmp_path / "extended")


def test_resume_after_interrupt(tmp_path, digits):
    config = TrainConfig(epochs=2, batch_size=100, latent_dim=2, hidden=(16,), seed=3)
    straight = train_vae(config, digits, tmp_path / "straight")

    calls = []

    def interrupt(epoch, total, record):
        calls.append(epoch)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(config, digits, tmp_path / "resumed", progress=interrupt)
    resumed = train_vae(config, digits, tmp_path / "resumed")
    assert calls == [1]
    assert [r["test_elbo"] for r in resumed["history"]] == [
        r["test_elbo"] for r in straight["history"]
    ]
    a = load_generator(tmp_path / "straight").state_dict()
    b = load_generator(tmp_path / "resumed").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_corrupt_training_state_is_reported(tmp_path, digits):
    config = TrainConfig(epochs=1, batch_size=100, latent_dim=2, hidden=(16,))
    train_vae(config, digits, tmp_path)
    (tmp_path / STATE).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train_vae(config, digits, tmp_path)


def test_fewer_epochs_than_already_trained_is_an_error(tmp_path, digits):
    config = TrainConfig(epochs=2, batch_size=100, latent_dim=2, hidden=(16,))
    train_vae(config, digits, tmp_path)
    fewer = TrainConfig(**{**config.__dict__, "epochs": 1})
    with pytest.raises(CheckpointError, match="already trained for 2 epochs"):
        train_vae(fewer, digits, tmp_path)

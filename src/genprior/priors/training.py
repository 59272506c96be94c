"""Training a VAE prior: epochs, test ELBO, checkpoints every epoch, exact resume.

The run folder holds ``training_state.safetensors`` (weights, optimiser state and progress in
one file, written atomically, so an interrupted run resumes from the last finished epoch) and
the exported checkpoint ``model.safetensors`` + ``config.json``. Shuffling and the
reparametrisation noise are seeded per epoch, so a resumed run reproduces the uninterrupted
one exactly.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from genprior.data import ImageDataset
from genprior.errors import CheckpointError
from genprior.priors.checkpoint import save_checkpoint, save_tensors_atomic
from genprior.priors.vae import VAE, VAEConfig

logger = logging.getLogger(__name__)

STATE = "training_state.safetensors"
Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_vae` (defaults: CSGM's MNIST VAE).

    Attributes:
        epochs: passes over the training images.
        batch_size: images per Adam step.
        lr: Adam learning rate.
        seed: seeds initialisation, shuffling and reparametrisation noise.
        latent_dim: K.
        hidden: hidden widths of the decoder (the encoder mirrors them).
        command: the command line that started the run, recorded in the checkpoint.
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    latent_dim: int = 20
    hidden: tuple[int, ...] = (500, 500)
    command: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; received {self.lr}")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


@torch.no_grad()
def evaluate_elbo(model: VAE, images: torch.Tensor, *, seed: int = 0) -> float:
    """Mean ELBO in nats per image over ``images`` (N, C, H, W), one posterior sample each."""
    generator = torch.Generator().manual_seed(seed)
    total = sum(
        model.elbo(batch, generator=generator).sum().item() for batch in images.split(1000)
    )
    return total / len(images)


def _save_state(folder: Path, model: VAE, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    tensors = {f"model.{key}": value for key, value in model.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    save_tensors_atomic(tensors, folder / STATE, {"meta": json.dumps(meta)})


def _load_state(folder: Path, model: VAE, optimizer: torch.optim.Optimizer) -> dict:
    path = folder / STATE
    try:
        with safe_open(path, framework="pt") as handle:
            meta = json.loads(handle.metadata()["meta"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({error}); delete it to restart"
        ) from error
    try:
        model.load_state_dict(
            {key[6:]: value for key, value in tensors.items() if key.startswith("model.")}
        )
    except RuntimeError as error:
        raise CheckpointError(
            f"{path} does not match the requested architecture: {error}"
        ) from error
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(
        {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
    )
    return meta


def train_vae(
    config: TrainConfig,
    dataset: ImageDataset,
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Train a VAE on ``dataset``'s training images; evaluate the test ELBO every epoch.

    Args:
        config: the training settings.
        dataset: images in [0, 1].
        out_dir: run folder; a previous run there with the same settings is resumed (and
            extended, if ``config.epochs`` is larger than before).
        resume: if False, an existing state in ``out_dir`` is an error.
        progress: called as ``progress(epoch, epochs, metrics)`` after every epoch.

    Returns:
        The run's metadata: settings, data fingerprint, per-epoch history, final test ELBO.
    """
    out_dir = Path(out_dir)
    train = dataset.tensor("train")
    test = dataset.tensor("test")
    arch = VAEConfig(config.latent_dim, tuple(config.hidden), dataset.image_shape)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = VAE(arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    settings = {key: value for key, value in asdict(config).items() if key != "command"}
    meta = {
        "settings": settings,
        "data": {
            "dataset": dataset.name,
            "fingerprint": dataset.fingerprint,
            "source": dataset.source,
        },
        "epoch": 0,
        "history": [],
    }

    if (out_dir / STATE).is_file():
        if not resume:
            raise CheckpointError(f"{out_dir} already holds a training run; pass resume=True")
        saved = _load_state(out_dir, model, optimizer)
        changed = _changed_settings(saved, meta)
        if changed:
            raise CheckpointError(
                f"{out_dir} holds a run with other settings or data (differing in "
                f"{', '.join(changed)}); use another --out or the same settings"
            )
        if saved["epoch"] > config.epochs:
            raise CheckpointError(
                f"{out_dir} holds a run already trained for {saved['epoch']} epochs, more than "
                f"epochs={config.epochs}; use another --out or at least {saved['epoch']} epochs"
            )
        meta = saved | {"settings": meta["settings"]}
        logger.info("resuming %s after epoch %d", out_dir, meta["epoch"])

    for epoch in range(meta["epoch"] + 1, config.epochs + 1):
        started = time.perf_counter()
        train_loss = _train_epoch(model, optimizer, train, config, epoch)
        test_elbo = evaluate_elbo(model, test, seed=config.seed)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_elbo": test_elbo,
            "seconds": time.perf_counter() - started,
        }
        meta["history"].append(record)
        meta["epoch"] = epoch
        _save_state(out_dir, model, optimizer, meta)
        _export(model, out_dir, meta, config.command)
        logger.info(
            "epoch %d/%d: train loss %.2f, test ELBO %.2f nats (%.1f s)",
            epoch,
            config.epochs,
            train_loss,
            test_elbo,
            record["seconds"],
        )
        if progress is not None:
            progress(epoch, config.epochs, record)
    if meta["epoch"] == 0 or not (out_dir / "config.json").is_file():
        _export(model, out_dir, meta, config.command)
    return meta


def _changed_settings(saved: dict, meta: dict) -> list[str]:
    """What keeps a saved run from being continued (only the number of epochs may change)."""
    new = json.loads(json.dumps(meta["settings"]))
    changed = [key for key in new if key != "epochs" and saved["settings"].get(key) != new[key]]
    if saved["data"]["fingerprint"] != meta["data"]["fingerprint"]:
        changed.append("data")
    return changed


def _train_epoch(
    model: VAE,
    optimizer: torch.optim.Optimizer,
    train: torch.Tensor,
    config: TrainConfig,
    epoch: int,
) -> float:
    """One pass over ``train`` (N, C, H, W) in shuffled batches; mean negative ELBO."""
    generator = _epoch_generator(config.seed, epoch)
    order = torch.randperm(len(train), generator=generator)
    model.train()
    total = 0.0
    for batch_indices in order.split(config.batch_size):
        loss = -model.elbo(train[batch_indices], generator=generator).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch_indices)
    model.eval()
    return total / len(train)


def _export(model: VAE, out_dir: Path, meta: dict, command: str) -> None:
    history = meta["history"]
    save_checkpoint(
        model,
        out_dir,
        {
            "data": meta["data"],
            "training": {
                **meta["settings"],
                "epochs_done": meta["epoch"],
                "test_elbo": history[-1]["test_elbo"] if history else None,
                "history": history,
            },
            "command": command,
        },
    )


__all__ = ["TrainConfig", "evaluate_elbo", "train_vae"]

"""Reduced-order models of 2D Burgers: FOM, sample meshes, POD/DEIM/gappy POD, LSPG, HRAE."""

import csv
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from genprior.errors import ConvergenceWarning, NonFiniteError, OptionError
from genprior.rom.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    DecoderMap,
    Scaling,
    band_index,
    fit,
)
from genprior.rom.burgers import (
    Burgers2D,
    SampleMesh,
    SampleMeshError,
    SolverDivergedError,
    initial_state,
    solve_fom,
)
from genprior.rom.experiment import SUMMARY_COLUMNS, BurgersROMConfig
from genprior.rom.linear import GappyPOD, deim, pod, qdeim
from genprior.rom.lspg import AffineMap, solve_lspg
from genprior.rom.output import relative_errors
from genprior.rom.snapshots import cache_path, load_or_solve

SMALL = Burgers2D(nx=12, dt=1 / 100, t_final=0.3)


@pytest.fixture(scope="module")
def trajectory():
    states, _ = solve_fom(SMALL, 1.0)
    return states


def random_state(seed=0):
    rng = np.random.default_rng(seed)
    return initial_state(SMALL, 1.0) + 0.1 * rng.standard_normal(SMALL.n_dofs)


def test_jacobian_matches_finite_differences():
    mesh = SampleMesh(SMALL, 1.0)
    y, y_prev = random_state(0), random_state(1)
    jac = mesh.jacobian(y).toarray()
    eps = 1e-6
    columns = [
        (mesh.residual(y + eps * e, y_prev) - mesh.residual(y - eps * e, y_prev)) / (2 * eps)
        for e in np.eye(SMALL.n_dofs)
    ]
    np.testing.assert_allclose(jac, np.stack(columns, axis=1), atol=1e-7)


def test_restricted_residual_and_jacobian_equal_full_on_sample_rows():
    full = SampleMesh(SMALL, 1.0)
    rows = np.array([0, 5, 17, 60, 99, 100, 150, 199])
    mesh = SampleMesh(SMALL, 1.0, rows)
    y, y_prev = random_state(0), random_state(1)
    restricted = mesh.residual(y[mesh.stencil], y_prev[rows])
    np.testing.assert_allclose(restricted, full.residual(y, y_prev)[rows], rtol=0, atol=1e-14)
    jac_full = full.jacobian(y).toarray()[rows][:, mesh.stencil]
    np.testing.assert_allclose(mesh.jacobian(y[mesh.stencil]).toarray(), jac_full, atol=1e-14)
    # the stencil holds exactly the columns with non-zeros (plus nothing else)
    needed = np.flatnonzero(np.abs(full.jacobian(y).toarray()[rows]).sum(0))
    assert set(needed) <= set(mesh.stencil)
    assert len(mesh.stencil) < SMALL.n_dofs


def test_fom_trajectory_is_finite_and_decays(trajectory):
    assert np.isfinite(trajectory).all()
    norms = np.linalg.norm(trajectory, axis=1)
    assert norms[-1] < norms[0]


def test_gappy_pod_reproduces_a_state_in_the_basis(trajectory):
    basis, _ = pod(trajectory.T, 6)
    rows = qdeim(basis, 6)
    state = basis @ np.array([1.0, -2.0, 0.5, 0.3, 0.0, 1.5])
    np.testing.assert_allclose(GappyPOD(basis, rows)(state[rows]), state, atol=1e-10)
    more = np.union1d(rows, [1, 2, 3])  # least squares with more rows than modes
    np.testing.assert_allclose(GappyPOD(basis, more)(state[more]), state, atol=1e-10)


@pytest.mark.parametrize("select", [qdeim, deim])
def test_sample_points_are_distinct_and_well_posed(trajectory, select):
    basis, _ = pod(np.diff(trajectory, axis=0).T, 8)
    points = select(basis)
    assert len(np.unique(points)) == 8
    assert np.linalg.cond(basis[points]) < 1e3


def test_full_basis_rom_reproduces_the_fom(trajectory):
    shifted = trajectory - trajectory[0]
    _, s = pod(shifted.T, 1)
    rank = int((s > s[0] * 1e-10).sum())
    basis, _ = pod(shifted.T, rank)
    trial = AffineMap(trajectory[0], basis)
    result = solve_lspg(SampleMesh(SMALL, 1.0), trial, np.zeros(rank), SMALL.n_steps, tol=1e-12)
    states = trajectory[0] + result.latents @ basis.T
    assert relative_errors(states, trajectory).max() < 1e-6


def test_hyper_reduced_rom_with_all_rows_equals_unreduced(trajectory):
    basis, _ = pod((trajectory - trajectory[0]).T, 3)
    every = SampleMesh(SMALL, 1.0, np.arange(SMALL.n_dofs))
    plain = SampleMesh(SMALL, 1.0)
    trial = AffineMap(trajectory[0], basis)
    a = solve_lspg(every, trial, np.zeros(3), SMALL.n_steps).latents
    b = solve_lspg(plain, trial, np.zeros(3), SMALL.n_steps).latents
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_decoder_jacobian_matches_finite_differences_and_restriction(trajectory):
    band, n_hidden = band_index(SMALL, 2, 2)
    config = AutoencoderConfig(latent_dim=3, stride=2, units=2, epochs=1, batch_size=8)
    trained = fit(trajectory, band, n_hidden, config)
    z = trained.encode(trajectory[5])[0]
    decoder = trained.decoder()
    y, jac = decoder.evaluate(z)
    eps = 1e-6
    fd = np.stack(
        [
            (decoder.evaluate(z + eps * e)[0] - decoder.evaluate(z - eps * e)[0]) / (2 * eps)
            for e in np.eye(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(jac, fd, atol=1e-6)
    rows = np.array([3, 40, 77, 150])
    sub = trained.decoder(rows)
    assert sub.n_hidden < decoder.n_hidden
    np.testing.assert_allclose(sub.evaluate(z)[0], y[rows], atol=1e-12)
    np.testing.assert_allclose(sub.decode(z[None])[0], y[rows], atol=1e-12)
    np.testing.assert_allclose(decoder.value(z), y, rtol=0, atol=0)
    trial = DecoderMap(decoder, trajectory[0], trained.encode(trajectory[0])[0])
    np.testing.assert_allclose(trial.evaluate(trained.encode(trajectory[0])[0])[0], trajectory[0])
    np.testing.assert_allclose(trial.value(z), trial.evaluate(z)[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "rows, match",
    [
        (np.array([0, 5, SMALL.n_dofs]), "out-of-range"),
        (np.array([-1, 3]), "out-of-range"),
        (np.array([3, 4, 4]), "duplicates"),
        (np.array([1.0, 2.0]), "integer"),
        (np.array([], dtype=int), "non-empty"),
    ],
)
def test_bad_sample_mesh(rows, match):
    with pytest.raises(SampleMeshError, match=match):
        SampleMesh(SMALL, 1.0, rows)


def test_bad_parameter_grid_and_latent_size():
    with pytest.raises(OptionError, match="parameter a"):
        initial_state(SMALL, 7.0)
    with pytest.raises(OptionError, match="parameter a"):
        initial_state(SMALL, "one")
    with pytest.raises(OptionError, match="grid nx"):
        Burgers2D(nx=3)
    with pytest.raises(OptionError, match="grid nx"):
        Burgers2D(nx=60.5)
    with pytest.raises(OptionError, match="latent_dim"):
        BurgersROMConfig(nx=8, dt=0.1, t_final=0.2, train_params=(1.0,), latent_dim=10)
    with pytest.raises(OptionError, match="POD rank"):
        pod(np.ones((20, 4)), 2)
    with pytest.raises(OptionError, match="method"):
        BurgersROMConfig(methods=("pod-galerkin",))


def test_diverging_newton_raises_with_step_and_residual():
    unstable = Burgers2D(nx=12, reynolds=1e4, dt=50.0, t_final=500.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((SolverDivergedError, ConvergenceWarning), match="time step 1"):
            warnings.simplefilter("error", ConvergenceWarning)
            solve_fom(unstable, 2.0, max_iter=3)


def test_diverging_gauss_newton_raises(trajectory):
    basis, _ = pod((trajectory - trajectory[0]).T, 2)
    trial = AffineMap(trajectory[0], 1e12 * basis)
    mesh = SampleMesh(SMALL, 1.0)
    with pytest.raises(SolverDivergedError, match="Gauss-Newton diverged at time step"):
        solve_lspg(mesh, trial, np.ones(2), SMALL.n_steps)


def test_corrupted_cache_is_rebuilt(tmp_path, trajectory, caplog):
    states, _ = load_or_solve(tmp_path, SMALL, 1.0)
    path = cache_path(tmp_path, SMALL, 1.0)
    again, _ = load_or_solve(tmp_path, SMALL, 1.0)
    np.testing.assert_array_equal(again, states)
    path.write_bytes(path.read_bytes()[:200])
    with caplog.at_level("WARNING", logger="genprior.rom.snapshots"):
        rebuilt, _ = load_or_solve(tmp_path, SMALL, 1.0)
    assert "corrupt" in caplog.text
    np.testing.assert_allclose(rebuilt, trajectory)


def test_quick_cli_end_to_end(tmp_path):
    from genprior.cli.main import main

    out = tmp_path / "run"
    argv = ["rom", "burgers", "--quick", "--nx", "10", "--samples", "12", "--epochs", "2"]
    argv += ["--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert main(argv) == 0
    with open(out / "summary.csv") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == SUMMARY_COLUMNS
    methods = [row["method"] for row in rows]
    assert {"fom", "pod-lspg-hr", "ae-lspg-hr", "hrae"} <= set(methods)
    for name in ("results.csv", "summary.json", "errors.png", "fields.png", "speedup.png"):
        assert (out / name).is_file()
    assert all(np.isfinite(float(row["mean_rel_error"])) for row in rows)
    # a rerun resumes from the cached snapshots and networks
    assert main(argv) == 0


def _no_solves(monkeypatch):
    """Make any full-order solve fail the test: option errors must come before them."""
    import genprior.rom.experiment as experiment

    def forbidden(*args, **kwargs):
        raise AssertionError("a FOM solve ran before the options were checked")

    monkeypatch.setattr(experiment, "load_or_solve", forbidden)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--samples", "0"], r"samples must be an integer in \[1, 1500\] .*; received 0$"),
        (
            ["--samples", "100000"],
            r"samples must be an integer in \[1, 1500\] .*; received 100000",
        ),
        (["--latent-dim", "0"], r"latent_dim must be an integer in \[1, \d+\] .*; received 0"),
        (["--nx", "3"], r"grid nx must be an integer in"),
        (["--epochs", "-1"], r"epochs must be an integer >= 0; received -1"),
        (["--hrae-epochs", "-1"], r"hrae_epochs must be an integer >= 0; received -1"),
        (["--units", "0"], r"units must be an integer >= 1; received 0"),
        (["--hrae-units", "0"], r"hrae_units must be an integer >= 1; received 0"),
        (["--seed", "-1"], r"seed must be an integer in \[0, 4294967295\]; received -1"),
    ],
)
def test_cli_rejects_bad_sizes_before_any_solve(tmp_path, monkeypatch, capsys, argv, match):
    import re

    from genprior.cli.main import main

    _no_solves(monkeypatch)
    out = tmp_path / "run"
    assert main(["rom", "burgers", "--quick", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(match, err.split(" (see ")[0]), err
    assert not (out / "snapshots").exists()


def test_hrae_has_its_own_width_and_residual_weighting(tmp_path, monkeypatch):
    import genprior.rom.experiment as experiment

    weights = {}

    def recording(mesh, trial, z0, n_steps, *, weight=None, progress=None):
        weights[len(weights)] = weight
        return solve_lspg(mesh, trial, z0, n_steps, weight=weight, progress=progress)

    monkeypatch.setattr(experiment, "solve_lspg", recording)
    config = BurgersROMConfig(
        nx=10,
        dt=1 / 50,
        t_final=0.2,
        train_params=(0.9, 1.1),
        latent_dim=2,
        n_samples=8,
        autoencoder=AutoencoderConfig(units=2),
        hrae_units=3,
        methods=("ae-lspg-hr", "hrae"),
        isolate=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        experiment.run_burgers(config, tmp_path)
    ae, hrae = weights.values()  # in the order of config.methods
    assert ae is not None and ae.shape == (8, 8)  # gappy: (R, S) weight by default
    assert hrae is None  # collocation by default
    networks = {
        name: np.load(tmp_path / "networks" / f"{name}.npz", allow_pickle=False)
        for name in ("ae", "hrae")
    }
    assert networks["ae"]["w/band"].shape[1] == 9 * 2
    assert networks["hrae"]["w/band"].shape[1] == 9 * 3
    assert config.autoencoder.latent_dim == 2 and config.autoencoder.seed == config.seed


def test_samples_bound_follows_the_grid_without_solving():
    # 2 * 6 * 6 = 72 dofs < 2 parameters x 100 steps: the dofs bound
    config = dict(nx=8, dt=0.01, t_final=1.0, train_params=(0.9, 1.1), latent_dim=2)
    assert BurgersROMConfig(n_samples=72, **config).n_samples == 72
    with pytest.raises(OptionError, match=r"samples must be an integer in \[1, 72\]"):
        BurgersROMConfig(n_samples=73, **config)
    # 2 parameters x 10 steps = 20 right-hand-side snapshots < 72 dofs
    with pytest.raises(OptionError, match=r"samples must be an integer in \[1, 20\]"):
        BurgersROMConfig(n_samples=21, **config | {"t_final": 0.1})
    with pytest.raises(OptionError, match=r"train_params must be distinct .*\(0.9, 0.9\)"):
        BurgersROMConfig(**config | {"train_params": (0.9, 0.9)})
    with pytest.raises(OptionError, match=r"time_stride must be an integer >= 1; received 0"):
        BurgersROMConfig(time_stride=0, **config)


def _scaled_model(trajectory, units=2, latent_dim=3, hidden="sampled"):
    band, n_hidden = band_index(SMALL, 2, units)
    config = AutoencoderConfig(latent_dim=latent_dim, units=units, hidden=hidden, sharpness=6.0)
    x = torch.as_tensor(Scaling.fit(trajectory).forward(trajectory), dtype=torch.float64)
    model = Autoencoder(x.shape[1], band, n_hidden, config).double()
    model.start_at_pod(x)
    return model, x


@pytest.mark.parametrize("nx, buffer_mb", [(12, 0.01), (13, 16.0), (13, 0.05)])
def test_grouped_output_layer_equals_a_least_squares_fit_per_row(nx, buffer_mb):
    # nx = 13: 11 interior cells per side, so the last coarse cells hold fewer rows (padding)
    problem = Burgers2D(nx=nx, dt=1 / 100, t_final=0.3)
    states, _ = solve_fom(problem, 1.0)
    band, n_hidden = band_index(problem, 2, 2)
    stencil = SampleMesh(problem, 1.0, np.array([0, 17, 40, 77])).stencil
    used, local = np.unique(band[stencil], return_inverse=True)  # as the HRAE remaps bands
    for rows, bands, units in (
        (None, band, n_hidden),
        (stencil, local.reshape(len(stencil), -1), len(used)),
    ):
        data = states if rows is None else states[:, rows]
        x = torch.as_tensor(Scaling.fit(data).forward(data), dtype=torch.float64)
        model = Autoencoder(x.shape[1], bands, units, AutoencoderConfig(latent_dim=3, units=2))
        model = model.double()
        model.start_at_pod(x)
        model.sample_hidden_units(x, (len(x),), 6.0, 200, np.random.default_rng(1))
        model.solve_output_layer(x, ridge=1e-13, buffer_mb=buffer_mb)
        z = model.encoder(x).detach()
        h = torch.sigmoid(model.hidden(z)).detach().numpy()
        fitted = model.decode(z).detach().numpy()
        for row in range(x.shape[1]):
            feats = np.column_stack([h[:, model.band[row].numpy()], z.numpy(), np.ones(len(z))])
            coef = np.linalg.lstsq(feats, x[:, row].numpy(), rcond=None)[0]
            # edge rows repeat hidden units, so compare fitted values, not coefficients
            np.testing.assert_allclose(fitted[:, row], feats @ coef, atol=1e-7)


def test_numpy_decoder_equals_the_torch_decoder_on_any_rows(trajectory):
    band, n_hidden = band_index(SMALL, 2, 2)
    trained = fit(trajectory, band, n_hidden, AutoencoderConfig(latent_dim=3, units=2))
    model = trained.model()
    z = torch.as_tensor(trained.encode(trajectory[::7]), dtype=torch.float64)
    scaled = model.decode(z).detach().numpy()
    full = trained.scaling.lo + trained.scaling.span * scaled
    rows = np.array([2, 30, 31, 99, SMALL.n_dofs - 1])
    decoder = trained.decoder(rows)
    np.testing.assert_allclose(decoder.decode(z.numpy()), full[:, rows], rtol=1e-12, atol=1e-12)
    y, jac = decoder.evaluate(z[2].numpy())
    auto = torch.autograd.functional.jacobian(lambda v: model.decode(v[None])[0], z[2])
    expected = trained.scaling.span[rows, None] * auto.numpy()[rows]
    np.testing.assert_allclose(jac, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, full[2, rows], rtol=1e-12)


def test_sampling_rates_use_the_rows_that_see_each_unit(trajectory, monkeypatch):
    import genprior.rom.autoencoder as autoencoder

    model, x = _scaled_model(trajectory)
    seen = {}
    real_draw = autoencoder._draw

    def spy(rates, group, rng):
        seen.update(rates=rates, group=group)
        return real_draw(rates, group, rng)

    monkeypatch.setattr(autoencoder, "_draw", spy)
    monkeypatch.setattr(
        autoencoder,
        "_candidate_pairs",
        lambda lengths, n, rng: (np.array([0, 3]), np.array([9, 20])),
    )
    model.sample_hidden_units(x, (len(x),), 6.0, 2, np.random.default_rng(0))
    z = model.encoder(x).detach().numpy()
    band = model.band.numpy()
    for unit in (0, 5, 17, model.hidden.out_features - 1):
        rows = np.flatnonzero((band == unit).any(1))
        expected = [
            np.linalg.norm((x[b] - x[a]).numpy()[rows]) / np.linalg.norm(z[b] - z[a])
            for a, b in ((0, 9), (3, 20))
        ]
        np.testing.assert_allclose(seen["rates"][seen["group"][unit]], expected, rtol=1e-5)


def test_fit_rejects_bad_trajectory_lengths_and_unusable_pairs(trajectory):
    band, n_hidden = band_index(SMALL, 2, 2)
    config = AutoencoderConfig(latent_dim=3, units=2)
    for lengths in [(10, 10), (len(trajectory) + 1,), (-1, len(trajectory) + 1), "31"]:
        with pytest.raises(OptionError, match=r"lengths must be positive integers summing to"):
            fit(trajectory, band, n_hidden, config, lengths=lengths)
    with pytest.raises(OptionError, match=r"need a trajectory with two snapshots"):
        fit(trajectory, band, n_hidden, config, lengths=(1,) * len(trajectory))
    with pytest.raises(NonFiniteError, match=r"overflow \(sharpness 1e\+300\); lower sharpness"):
        fit(trajectory, band, n_hidden, replace(config, sharpness=1e300))


def test_sampled_units_switch_between_two_snapshots_of_one_trajectory(trajectory):
    model, x = _scaled_model(trajectory)
    lengths = (15, len(x) - 15)  # two "trajectories": steps 0-14 and 15-30
    model.sample_hidden_units(x, lengths, 6.0, 300, np.random.default_rng(0))
    z = model.encoder(x).detach().numpy()
    pre = z @ model.hidden.weight.detach().numpy().T + model.hidden.bias.detach().numpy()
    block = np.arange(len(x)) >= 15
    for unit in range(pre.shape[1]):
        low = np.flatnonzero(np.isclose(pre[:, unit], -3.0, atol=1e-9))  # -s/2 at z_t1
        high = np.flatnonzero(np.isclose(pre[:, unit], 3.0, atol=1e-9))  # +s/2 at z_t2
        assert (block[low][:, None] == block[high][None, :]).any(), unit


def test_candidate_pairs_stay_in_one_trajectory_and_draws_follow_the_rates():
    from genprior.rom.autoencoder import _candidate_pairs, _draw

    rng = np.random.default_rng(0)
    first, second = _candidate_pairs((5, 4), 2000, rng)
    assert ((first < 5) == (second < 5)).all() and second.max() == 8
    rates = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    group = np.repeat([0, 1, 2], 300)  # 300 units on each row set
    picks = _draw(rates, group, rng)
    assert (picks[:300] == 2).all()  # all the rate on the last pair
    assert set(picks[300:600]) == {0, 1, 2}  # no change anywhere: uniform
    assert set(picks[600:]) == {0, 2} and 100 < (picks[600:] == 0).sum() < 200


@pytest.mark.parametrize(
    "option, value, match",
    [
        ("hidden", "learned", "hidden must be one of sampled, random; received 'learned'"),
        ("sharpness", 0.0, "sharpness must be a number > 0; received 0.0"),
        ("sharpness", float("nan"), "sharpness must be a number > 0"),
        ("sharpness", True, "sharpness must be a number > 0; received True"),
        ("ridge", 1e-20, "ridge must be a number >= 1e-12; received 1e-20"),
        ("batch_size", 0, "batch_size must be an integer >= 1; received 0"),
        ("units", 0, "units must be an integer >= 1; received 0"),
        ("pairs", 0, "pairs must be an integer >= 1; received 0"),
    ],
)
def test_bad_hidden_layer_options_are_named(option, value, match):
    with pytest.raises(OptionError, match=match):
        AutoencoderConfig(**{option: value})


def test_tampered_network_file_is_detected(tmp_path, trajectory, caplog):
    from genprior.rom.autoencoder import load_trained, save_trained

    band, n_hidden = band_index(SMALL, 2, 2)
    trained = fit(trajectory, band, n_hidden, AutoencoderConfig(latent_dim=3, units=2))
    path = tmp_path / "ae.npz"
    save_trained(path, trained, {"run": 1})
    assert load_trained(path, {"run": 1}) is not None
    assert load_trained(path, {"run": 2}) is None  # other settings
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["w/out_weight"] = arrays["w/out_weight"] * 0.5  # valid npz, wrong values
    np.savez(path, **arrays)
    with caplog.at_level("WARNING"):
        assert load_trained(path, {"run": 1}) is None
    assert "fails its checksum" in caplog.text


def test_zero_epochs_fits_only_the_output_layer(trajectory):
    with pytest.raises(OptionError, match="epochs must be an integer >= 0; received -1"):
        AutoencoderConfig(epochs=-1)
    band, n_hidden = band_index(SMALL, 2, 2)
    config = AutoencoderConfig(latent_dim=3, stride=2, units=2, epochs=0, batch_size=8)
    calls = []
    trained = fit(trajectory, band, n_hidden, config, progress=lambda **kw: calls.append(kw))
    assert calls == []  # no Adam epoch ran
    assert np.isfinite(trained.final_loss) and trained.final_loss < 1e-3


def test_cli_help_says_what_zero_epochs_means(capsys):
    from genprior.cli.main import main

    with pytest.raises(SystemExit):
        main(["rom", "burgers", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 skips Adam" in text and "least squares" in text


def test_cli_shows_warnings_as_one_log_line(monkeypatch, capsys, caplog):
    import genprior.rom.experiment as experiment
    import genprior.rom.output as output
    from genprior.cli.main import main

    def fake_run(config, out, progress=None):
        warnings.warn("Gauss-Newton reached 20 iterations", ConvergenceWarning, stacklevel=2)
        return {"stage_seconds": {"fake": 0.0}}

    monkeypatch.setattr(experiment, "run_burgers", fake_run)
    monkeypatch.setattr(output, "format_summary", lambda document: "summary")
    with caplog.at_level("WARNING"):
        assert main(["rom", "burgers", "--quick"]) == 0
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert messages == ["ConvergenceWarning: Gauss-Newton reached 20 iterations"]
    err = capsys.readouterr().err
    assert "warnings.warn" not in err and ".py:" not in err


def test_rom_progress_bars_redraw_rarely_off_a_terminal(capsys):
    from tqdm import tqdm

    from genprior.cli.common import REDRAW_SECONDS_LOG
    from genprior.cli.rom import tqdm_progress_factory

    update = tqdm_progress_factory("FOM a=1.0", 500)
    (bar,) = [b for b in tqdm._instances if b.desc == "FOM a=1.0"]
    assert bar.mininterval == REDRAW_SECONDS_LOG  # pytest's stderr is not a terminal
    assert bar.maxinterval >= REDRAW_SECONDS_LOG
    for _ in range(500):
        update()
    assert bar.disable or bar.n == 500
    assert capsys.readouterr().err.count("\r") <= 3  # first draw and the close only
    tqdm_progress_factory("train ae", 0)()  # zero epochs: no bar, nothing left open
    assert not [b for b in tqdm._instances if b.desc == "train ae"]


def test_validation_script_parses_settings(tmp_path):
    import argparse
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "rom_validation.py"
    spec = importlib.util.spec_from_file_location("rom_validation", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    experiment, network = script.parse_setting("latent_dim=8 hrae_residual=gappy ae.sharpness=4")
    assert experiment == {"latent_dim": 8, "hrae_residual": "gappy"}
    assert network == {"sharpness": 4}
    assert script.parse_setting("") == ({}, {})
    with pytest.raises(SystemExit, match="unknown setting 'latent'"):
        script.parse_setting("latent=8")
    with pytest.raises(SystemExit, match="key=value"):
        script.parse_setting("latent_dim")
    assert script.seed_list("0,2") == [0, 2]
    for bad in ("", "x", "0,-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="seeds such as 0,1,2"):
            script.seed_list(bad)
    with pytest.raises(SystemExit, match="no usable cached trajectory for a=0.95"):
        script.read_trajectory(tmp_path, Burgers2D(), 0.95)
    # every fold holds out an inner training parameter and trains on the other three
    for held_out, train in script.FOLDS.items():
        assert held_out not in train and len(train) == 3

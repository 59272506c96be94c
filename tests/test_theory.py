"""Random ReLU networks, negation descent, spiked models, conditions and the theory CLI."""

import json
import math

import pytest
import torch

from genprior.cli.main import main
from genprior.errors import NonFiniteError, OptionError, ShapeError
from genprior.io import read_csv
from genprior.operators import GaussianCS, PhaseRetrieval
from genprior.priors.random_relu import RandomReLUNetwork, check_widths
from genprior.solvers.negation import MeasurementObjective, NegationDescent, relative_error
from genprior.solvers.spiked import (
    SpikedDescent,
    SpikedMatrix,
    SpikedObjective,
    goe,
    sign_free_error,
    spectral_estimate,
    spiked_wigner,
    spiked_wigner_points,
    spiked_wishart,
    spiked_wishart_points,
    truncated_power_method,
)
from genprior.theory import PhaseTransitionConfig, SpikedConfig
from genprior.theory.conditions import check_conditions, expected_gram
from genprior.theory.recovery import check_architecture

F64 = torch.float64


def _net(widths, trials=4, seed=0):
    return RandomReLUNetwork(widths, trials=trials, seed=seed, dtype=F64)


# -- networks -------------------------------------------------------------------------------
def test_networks_are_independent_of_batch_size_and_seeded():
    big, small = _net([3, 20, 30], trials=5), _net([3, 20, 30], trials=2)
    assert torch.equal(big.W2[:2], small.W2)
    assert not torch.equal(big.W2[0], big.W2[1])
    assert not torch.equal(_net([3, 20, 30], seed=1).W1, small.W1[:1].expand(4, -1, -1))


def test_weight_variance_is_one_over_output_width():
    net = RandomReLUNetwork([50, 400], trials=1, seed=0, dtype=F64)
    assert net.W1.var().item() == pytest.approx(1 / 400, rel=0.05)


def test_homogeneity_and_unit_target():
    net = _net([4, 30, 40])
    target = net.unit_target()
    assert torch.allclose(net(target).norm(dim=1), torch.ones(4, dtype=F64))
    assert torch.allclose(net(2.5 * target), 2.5 * net(target))
    assert (target[:, [0, 2, 3]] == 0).all() and (target[:, 1] > 0).all()


def test_jacobian_and_vjp_match_autograd():
    net = _net([3, 15, 20, 12], trials=2)
    x = torch.randn(2, 3, dtype=F64)
    auto = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda v, r=r: _single(net, r, v), x[r])
            for r in range(2)
        ]
    )  # (R, N, K)
    assert torch.allclose(net.jacobian(x), auto, atol=1e-12)
    g = torch.randn(2, 1, 12, dtype=F64)
    _, masks = net.forward_with_masks(x.unsqueeze(1))
    assert torch.allclose(net.vjp(masks, g)[:, 0], torch.einsum("rn,rnk->rk", g[:, 0], auto))


def _single(net, r, v):
    for w in net.weights:
        v = torch.relu(w[r] @ v)
    return v


@pytest.mark.parametrize(
    "widths", [[0, 5], [3], [3, -1], [3.0, 5], "3-5", [True, 4], None, [3, 5.5]]
)
def test_bad_widths_are_named(widths):
    with pytest.raises(ValueError, match="widths must be a list of at least two positive"):
        check_widths(widths)


def test_from_weights_checks_shapes_and_values():
    with pytest.raises(ShapeError, match=r"weights\[1\] must have shape"):
        RandomReLUNetwork.from_weights([torch.randn(5, 3), torch.randn(4, 6)])
    with pytest.raises(NonFiniteError, match=r"weights\[0\]"):
        RandomReLUNetwork.from_weights([torch.full((5, 3), math.nan)])
    net = RandomReLUNetwork.from_weights([torch.randn(5, 3), torch.randn(4, 5)])
    assert net.widths == (3, 5, 4) and net.trials == 1


# -- gradients against finite differences ---------------------------------------------------
def _finite_difference_check(objective, k, trials):
    x = torch.randn(trials, 1, k, dtype=F64)
    _, grad = objective.loss_grad(x)
    direction = torch.randn_like(x)
    h = 1e-6
    numeric = (objective.loss(x + h * direction) - objective.loss(x - h * direction)) / (2 * h)
    analytic = (grad * direction).sum(-1)
    assert torch.allclose(numeric, analytic, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("loss", ["squared", "amplitude"])
def test_measurement_gradient_matches_finite_differences(loss):
    net = _net([4, 25, 30], trials=3)
    A = torch.randn(3, 12, 30, dtype=F64)
    objective = MeasurementObjective(net, torch.randn(3, 12, dtype=F64).abs(), A, loss)
    _finite_difference_check(objective, 4, 3)


def test_spiked_gradients_match_finite_differences():
    net = _net([3, 20, 25], trials=2)
    spike = net(net.unit_target())
    for data in (spiked_wishart(spike, 7, 0.5, seed=1), spiked_wigner(spike, 0.3, seed=1)):
        _finite_difference_check(SpikedObjective(net, data), 3, 2)


def test_wishart_factored_form_matches_dense():
    net = _net([3, 20, 25], trials=2)
    data = spiked_wishart(net(net.unit_target()), 9, 0.7, seed=2)
    dense = SpikedMatrix(data.dense())
    v = torch.randn(2, 3, 25, dtype=F64)
    assert torch.allclose(data.matvec(v), dense.matvec(v))
    assert torch.allclose(data.frobenius_sq(), dense.frobenius_sq())


# -- recovery -------------------------------------------------------------------------------
def test_noiseless_compressed_sensing_recovers_small_k():
    net = _net([4, 120, 100], trials=6, seed=1)
    signal = net(net.unit_target())
    A = torch.stack([GaussianCS((100,), 60, seed=s).A for s in range(6)]).to(F64)
    y = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0]
    result = NegationDescent(max_iters=4000).solve(net, y, A, seed=0)
    assert (relative_error(result.signal, signal) < 1e-6).all()
    assert result.converged.all()


def test_negation_rescues_a_start_in_the_wrong_half_space():
    net = _net([5, 100, 100, 100, 100], trials=8, seed=3)
    target = net.unit_target()
    signal = net(target)
    x0 = -target + 0.05 * torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    plain = NegationDescent(negation="none", max_iters=1500).solve(net, signal, x0=x0)
    negated = NegationDescent(negation="every-step", max_iters=1500).solve(net, signal, x0=x0)
    assert (relative_error(plain.signal, signal) > 0.3).sum() >= 5
    assert (relative_error(negated.signal, signal) < 1e-6).all()
    assert (negated.flips >= 1).all()
    two = NegationDescent(negation="two-start", max_iters=1500).solve(net, signal, x0=x0)
    assert (relative_error(two.signal, signal) < 1e-6).all() and (two.start == 1).all()


@pytest.mark.parametrize("negation", ["every-step", "two-start", "none"])
@pytest.mark.parametrize("loss", ["squared", "amplitude"])
def test_stacked_points_equal_independent_solves(negation, loss):
    """Point p on shared draws is the problem with W_1[:, :k_p] and c_p A[:m_p]."""
    net, gen = _net([6, 80, 60], trials=4, seed=1), torch.Generator().manual_seed(0)
    ks, ms = (2, 4, 6, 3), (40, 20, 30, 10)
    A = torch.randn(4, 40, 60, dtype=F64, generator=gen) / 40**0.5
    x_true = torch.randn(4, 6, dtype=F64, generator=gen)
    x0 = torch.randn(4, 6, dtype=F64, generator=gen)
    y = torch.zeros(4, 4, 40, dtype=F64)
    weights = torch.zeros(4, 40, dtype=F64)
    for p, (k, m) in enumerate(zip(ks, ms)):
        x_k = torch.cat([x_true[:, :k], torch.zeros(4, 6 - k, dtype=F64)], dim=1)
        y[:, p] = torch.bmm(net(x_k).unsqueeze(1), A.transpose(1, 2))[:, 0]
        weights[p, :m] = 40 / m
    y = y.abs() if loss == "amplitude" else y
    solver = NegationDescent(max_iters=2000, negation=negation, grad_tol=1e-9, loss=loss)
    stacked = solver.solve(net, y, A, x0=x0, latent_sizes=ks, row_weights=weights)
    assert stacked.x.shape == (4, 4, 6) and stacked.iterations.shape == (4, 4)
    spread = stacked.iterations.unique().numel()
    assert stacked.converged.sum() >= 8 and spread >= 8  # starts finished at many steps
    for p, (k, m) in enumerate(zip(ks, ms)):
        single = RandomReLUNetwork.from_weights([net.W1[:, :, :k], net.W2])
        scale = (40 / m) ** 0.5
        alone = solver.solve(single, scale * y[:, p, :m], scale * A[:, :m], x0=x0[:, :k])
        one = stacked.point(p)
        assert torch.allclose(one.x[:, :k], alone.x, atol=1e-10)
        assert (one.x[:, k:] == 0).all()
        assert torch.allclose(one.signal, alone.signal, atol=1e-10)
        assert torch.allclose(one.loss, alone.loss, atol=1e-12, rtol=1e-8)
        assert torch.equal(one.iterations, alone.iterations)
        assert torch.equal(one.converged, alone.converged)
        assert torch.equal(one.flips, alone.flips) and torch.equal(one.start, alone.start)


def test_stacked_points_check_their_sizes():
    net = _net([4, 30, 20], trials=2)
    y = torch.zeros(2, 3, 20, dtype=F64)
    solver = NegationDescent(max_iters=5)
    with pytest.raises(ValueError, match="latent_sizes must be .* in 1..4"):
        solver.solve(net, y, latent_sizes=[1, 2, 5])
    with pytest.raises(ShapeError, match="disagree in P"):
        solver.solve(net, y, latent_sizes=[1, 2])
    with pytest.raises(ShapeError, match="row_weights must have shape"):
        solver.solve(net, y, row_weights=torch.ones(3, 7))
    with pytest.raises(ValueError, match="non-negative"):
        solver.solve(net, y, row_weights=-torch.ones(3, 20))
    with pytest.raises(ShapeError, match="x0 must have shape"):
        solver.solve(net, y, x0=torch.zeros(2, 2, 4, dtype=F64))
    with pytest.raises(TypeError, match="latent_sizes must be a list"):
        solver.solve(net, y, latent_sizes=3)
    with pytest.raises(ShapeError, match="P >= 1"):
        solver.solve(net, torch.zeros(2, 0, 20, dtype=F64))


def test_shared_measurements_with_row_weights_and_random_starts():
    """y (R, M) for every point, weights picking rows, starts drawn from the seed."""
    net = _net([3, 60, 50], trials=3, seed=5)
    signal = net(net.unit_target())
    A = torch.stack([GaussianCS((50,), 40, seed=s).A for s in range(3)]).to(F64)
    y = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0]
    weights = torch.zeros(2, 40, dtype=F64)
    weights[0], weights[1, :25] = 1.0, 40 / 25
    solver = NegationDescent(max_iters=3000)
    stacked = solver.solve(net, y, A, seed=4, row_weights=weights)
    alone = solver.solve(net, y[:, :25] * 1.6**0.5, A[:, :25] * 1.6**0.5, seed=4)
    assert (relative_error(stacked.point(0).signal, signal) < 1e-6).all()
    assert torch.allclose(stacked.point(1).signal, alone.signal, atol=1e-10)


def test_phase_retrieval_operator_and_amplitude_loss():
    net = _net([3, 80, 120], trials=6, seed=2)
    signal = net(net.unit_target())
    op = PhaseRetrieval((120,), 100, seed=0).double()
    result = NegationDescent(max_iters=4000).solve(net, op(signal), op, seed=1)
    assert (relative_error(result.signal, signal) < 1e-6).sum() >= 5


def test_spiked_solver_recovers_the_spike_exactly_at_zero_noise():
    net = _net([3, 40, 60], trials=3, seed=4)
    spike = net(net.unit_target())
    solver = SpikedDescent(lr=0.1, max_iters=3000, grad_tol=1e-11)
    result = solver.solve(net, spiked_wigner(spike, 0.0), seed=0)
    assert ((result.signal - spike).norm(dim=1) < 1e-6).all()
    assert sign_free_error(spectral_estimate(spiked_wigner(spike, 0.0)), spike).max() < 1e-6


@pytest.mark.parametrize("model", ["wigner", "wishart"])
def test_stacked_spiked_points_equal_independent_solves(model):
    net = _net([5, 30, 40], trials=3, seed=2)
    spike = net(net.unit_target())
    ks = (2, 5, 3)
    if model == "wigner":
        data = spiked_wigner_points(spike, [0.0, 0.05, 0.3], seed=1)
    else:
        data = spiked_wishart_points(spike, [200, 30, 80], seed=1)
    for p in range(3):  # ||M_p||_F^2 from the stacked form matches the dense matrices
        dense = data.point(p).dense()
        assert torch.allclose(data.frobenius_sq()[:, p], dense.pow(2).sum((1, 2)), rtol=1e-10)
    solver = SpikedDescent(lr=0.1, max_iters=4000, grad_tol=3e-4, negation="two-start")
    stacked = solver.solve(net, data, seed=0, latent_sizes=ks)
    assert stacked.signal.shape == (3, 3, 40)
    assert (stacked.iterations < 4000).sum() >= 3  # starts finished and were repacked
    for p, k in enumerate(ks):
        single = RandomReLUNetwork.from_weights([net.W1[:, :, :k], net.W2])
        alone = solver.solve(single, data.point(p), x0=solver.x0_std * _start(3, 5)[:, :k])
        one = stacked.point(p)
        assert torch.allclose(one.signal, alone.signal, atol=1e-10)
        assert torch.equal(one.iterations, alone.iterations)
    with pytest.raises(ShapeError, match="one size per point"):
        solver.solve(net, data, latent_sizes=[2, 3])
    with pytest.raises(TypeError, match="needs stacked data"):
        solver.solve(net, data.point(0), latent_sizes=[2])


@pytest.mark.parametrize("model", ["wigner", "wishart"])
def test_stacked_baselines_equal_per_point_baselines(model):
    net = _net([4, 30, 60], trials=3, seed=6)
    spike = net(net.unit_target())
    if model == "wigner":
        data = spiked_wigner_points(spike, [0.02, 0.1, 0.2], seed=2)
    else:
        data = spiked_wishart_points(spike, [500, 200, 50], seed=2)
    spectral = spectral_estimate(data)
    sparse = truncated_power_method(data, 30, init=spectral)
    assert spectral.shape == sparse.shape == (3, 3, 60)
    for p in range(3):
        alone = spectral_estimate(data.point(p))
        assert sign_free_error(spectral[:, p], alone).max() < 1e-6
        alone_sparse = truncated_power_method(data.point(p), 30, init=alone)
        assert sign_free_error(sparse[:, p], alone_sparse).max() < 1e-6
    if model == "wigner":  # nu = 0.02: a clear spike is found
        assert sign_free_error(spectral[:, 0], spike).max() < 0.1


def _start(trials, k, seed=0):
    """The random starts NegationDescent and SpikedDescent draw for ``seed`` (unit std)."""
    from genprior.priors.random_relu import trial_generator
    from genprior.solvers.negation import START_STREAM

    rows = [
        torch.randn(k, generator=trial_generator(seed, r, START_STREAM), dtype=F64)
        for r in range(trials)
    ]
    return torch.stack(rows)


def test_wishart_baselines_and_generative_estimate_improve_with_samples():
    net = _net([3, 40, 60], trials=3, seed=4)
    spike = net(net.unit_target())
    data = spiked_wishart(spike, 4000, 0.3, seed=0)
    assert sign_free_error(spectral_estimate(data), spike).max() < 0.1
    assert sign_free_error(truncated_power_method(data, 30), spike).max() < 0.2
    result = SpikedDescent(lr=0.1, max_iters=2000).solve(net, data)
    assert (result.signal - spike).norm(dim=1).max() < 0.05


def test_goe_is_symmetric_with_the_right_variances():
    h = goe(300, 2, seed=0, dtype=F64)
    assert torch.equal(h, h.transpose(1, 2))
    off = h[:, torch.triu_indices(300, 300, 1)[0], torch.triu_indices(300, 300, 1)[1]]
    assert off.var().item() == pytest.approx(1 / 300, rel=0.05)
    assert h.diagonal(dim1=1, dim2=2).var().item() == pytest.approx(2 / 300, rel=0.2)
    y = spiked_wigner(torch.rand(2, 300, dtype=F64), 0.5).matrix
    assert torch.equal(y, y.transpose(1, 2))


# -- bad input ------------------------------------------------------------------------------
def test_non_symmetric_matrix_is_rejected():
    with pytest.raises(ValueError, match="symmetric matrix; received one with max"):
        SpikedMatrix(torch.randn(1, 5, 5))


def test_nans_and_shapes_are_clear_errors():
    net = _net([3, 10, 8], trials=2)
    solver = NegationDescent(max_iters=5)
    with pytest.raises(NonFiniteError, match="y holds NaN"):
        solver.solve(net, torch.full((2, 8), math.nan, dtype=F64))
    with pytest.raises(ShapeError, match=r"y must have shape \(R, M\) = \(2, 8\); received"):
        solver.solve(net, torch.zeros(3, 8, dtype=F64))
    with pytest.raises(ShapeError, match=r"A must hold one matrix per network"):
        solver.solve(net, torch.zeros(2, 4, dtype=F64), torch.zeros(3, 4, 8))
    with pytest.raises(NonFiniteError, match="x0 holds NaN"):
        solver.solve(net, torch.zeros(2, 8, dtype=F64), x0=torch.full((2, 3), math.nan))
    with pytest.raises(NonFiniteError, match="spike holds NaN"):
        spiked_wishart(torch.full((2, 8), math.nan, dtype=F64), 3)
    with pytest.raises(ShapeError, match="R=2 matrices of size n=8"):
        SpikedDescent().solve(net, spiked_wigner(torch.rand(1, 8, dtype=F64), 0.1))


def test_bad_options_name_the_argument():
    with pytest.raises(OptionError, match="negation must be one of every-step"):
        NegationDescent(negation="sometimes")
    with pytest.raises(ValueError, match="lr must be a finite number > 0; received -1"):
        NegationDescent(lr=-1)
    with pytest.raises(ValueError, match=r"k must be at most the first layer width n1 = 50"):
        check_architecture(60, (50, 40))
    with pytest.raises(ValueError, match=r"m must be an integer in 1..40 .* received m = 0"):
        check_architecture(5, (50, 40), m=0)
    with pytest.raises(ValueError, match="k must be at most"):
        PhaseTransitionConfig(architectures=((50, 40),), ks=((60,),), m=20).validated()
    with pytest.raises(OptionError, match="model must be one of wishart, wigner"):
        SpikedConfig(models=("gaussian",)).validated()


# -- conditions -----------------------------------------------------------------------------
def test_expected_gram_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(200000, 3, generator=gen, dtype=F64) / math.sqrt(200000)
    x, y = torch.tensor([1.0, 0.0, 0.0], dtype=F64), torch.tensor([0.3, 1.0, -0.2], dtype=F64)
    empirical = (w * (w @ x > 0)[:, None]).T @ (w * (w @ y > 0)[:, None])
    assert torch.allclose(empirical, expected_gram(x, y), atol=0.01)
    assert torch.allclose(expected_gram(x, 2 * x), 0.5 * torch.eye(3, dtype=F64))


def test_conditions_improve_with_expansivity():
    gen = torch.Generator().manual_seed(0)
    wide = [torch.randn(400, 4, generator=gen, dtype=F64)]
    narrow = [torch.randn(8, 4, generator=gen, dtype=F64)]
    (w,), (n,) = check_conditions(wide, pairs=20), check_conditions(narrow, pairs=20)
    assert w["wdc"] < n["wdc"] and w["layer"] == 1 and w["n_out"] == 400
    rows = check_conditions([torch.randn(60, 3), torch.randn(80, 60)], pairs=10)
    assert [r["layer"] for r in rows] == [1, 2] and all(r["r2wdc"] >= 0 for r in rows)


# -- command line ---------------------------------------------------------------------------
def test_phase_transition_command_writes_the_summary_and_resumes(tmp_path, capsys):
    args = ["theory", "phase-transition", "--widths", "60-50", "--ks", "2", "30", "--m", "40"]
    args += ["--trials", "3", "--max-iters", "400", "--out", str(tmp_path)]
    assert main(args) == 0
    rows = read_csv(tmp_path / "summary.csv")
    assert list(rows[0]) == ["widths", "k", "trials", "success_rate"]
    assert [(r["widths"], r["k"], r["trials"]) for r in rows] == [
        ("k-60-50", "2", "3"),
        ("k-60-50", "30", "3"),
    ]
    assert float(rows[0]["success_rate"]) == 1.0
    assert (tmp_path / "success.png").is_file()
    first = json.loads((tmp_path / "summary.json").read_text())
    assert main(args) == 0  # resumes: nothing recomputed
    again = json.loads((tmp_path / "summary.json").read_text())
    assert again["seconds_per_point"] == first["seconds_per_point"]
    assert "k-60-50" in capsys.readouterr().out


@pytest.mark.parametrize("experiment", ["phase-transition", "noise", "denoise", "phase-retrieval"])
def test_shared_and_independent_draws_give_the_same_table(tmp_path, experiment):
    """Both ways estimate the same quantities; only the draws differ."""
    sizes = {
        "phase-transition": ["--widths", "60-50", "--ks", "2", "5", "--m", "40"],
        "noise": ["--hidden", "60", "50", "--ks", "2", "5", "--m", "40", "--taus", "0.01"],
        "denoise": ["--hidden", "60", "50", "--ks", "2", "5", "--taus", "0.01", "0.1"],
        "phase-retrieval": ["--hidden", "60", "50", "--k", "2", "--ms", "30", "45"],
    }[experiment]
    args = ["theory", experiment, *sizes, "--trials", "3", "--max-iters", "3000"]
    tables = []
    for extra, folder in (([], "shared"), (["--independent-points"], "independent")):
        assert main([*args, *extra, "--out", str(tmp_path / folder)]) == 0
        tables.append(read_csv(tmp_path / folder / "summary.csv"))
        document = json.loads((tmp_path / folder / "summary.json").read_text())
        assert document["config"]["shared_draws"] is (not extra)
    shared, independent = tables
    assert [list(row) for row in shared] == [list(row) for row in independent]
    label = [key for key in shared[0] if key in ("k", "m")]
    assert sorted(tuple(row[key] for key in label) for row in shared) == sorted(
        tuple(row[key] for key in label) for row in independent
    )
    if experiment == "phase-transition":  # k = 2, 5 from 40 measurements: always found
        assert {row["success_rate"] for row in shared + independent} == {"1.0"}


def test_spiked_command_writes_the_summary(tmp_path):
    args = ["theory", "spiked", "--quick", "--ks", "3", "--hidden", "20", "40", "--trials", "2"]
    assert main([*args, "--max-iters", "50", "--out", str(tmp_path)]) == 0
    rows = read_csv(tmp_path / "summary.csv")
    assert list(rows[0]) == ["model", "method", "k", "theta", "error_mean"]
    assert {r["model"] for r in rows} == {"wishart", "wigner"}
    assert {r["method"] for r in rows} == {"generative", "spectral", "sparse-pca"}
    assert (tmp_path / "spiked.png").is_file()


def test_bad_command_line_values_are_one_line_errors(tmp_path, capsys):
    code = main(
        ["theory", "phase-transition", "--widths", "50-40", "--ks", "60", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "k must be at most the first layer width n1 = 50" in capsys.readouterr().err
    code = main(["theory", "phase-transition", "--widths", "a-b", "--out", str(tmp_path)])
    assert code == 2
    assert "--widths must be hidden widths joined by '-'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["phase-transition", "--ks", "0"], "the latent size k must be an integer >= 1"),
        (["phase-transition", "--widths", "0-5"], "hidden widths must be positive integers"),
        (["expansivity", "--ratios", "nan"], "ratios must be finite numbers > 0"),
        (["denoise", "--taus", "nan"], "taus must be finite numbers >= 0"),
        (["conditions", "--pairs", "0", "--widths", "5-40-80"], "pairs must be an integer >= 1"),
    ],
)
def test_bad_values_are_caught_before_any_work(tmp_path, capsys, args, message):
    assert main(["theory", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "progress.json").exists()


def test_conditions_command_reads_a_weight_file(tmp_path, capsys):
    path = tmp_path / "weights.pt"
    torch.save({"W1": torch.randn(40, 3), "W2": torch.randn(50, 40)}, path)
    args = ["theory", "conditions", "--weights", str(path), "--pairs", "5"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "conditions.json").read_text())["rows"]
    assert [(r["layer"], r["n_out"], r["n_in"]) for r in rows] == [(1, 40, 3), (2, 50, 40)]
    assert "R2WDC" in capsys.readouterr().out
    assert main(["theory", "conditions", "--weights", str(tmp_path / "missing.pt")]) == 2


def test_another_run_in_out_is_refused_unless_overwrite(tmp_path, capsys):
    base = ["theory", "expansivity", "--quick", "--ratios", "2", "--max-iters", "5"]
    assert main([*base, "--trials", "2", "--out", str(tmp_path)]) == 0
    assert main([*base, "--trials", "3", "--out", str(tmp_path)]) == 2
    assert "differing in trials" in capsys.readouterr().err
    assert main([*base, "--trials", "3", "--out", str(tmp_path), "--overwrite"]) == 0
    other = ["theory", "denoise", "--quick", "--ks", "2", "--hidden", "8", "8", "--taus", "0.1"]
    assert main([*other, "--out", str(tmp_path)]) == 2
    assert "holds a run of another experiment (expansivity)" in capsys.readouterr().err
    assert main([*base, "--trials", "3", "--out", str(tmp_path)]) == 0
    assert "resuming" in capsys.readouterr().out


@pytest.mark.parametrize("name,content", [("w.pt", b"junk"), ("w.safetensors", b"\x10\x00")])
def test_unreadable_weights_file_is_a_clear_error(tmp_path, name, content):
    from genprior.errors import CheckpointError
    from genprior.theory.conditions import load_weights

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_weights(path)

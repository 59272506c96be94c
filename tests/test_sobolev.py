import csv
import math

import pytest
import torch

from genprior.cli.main import main
from genprior.errors import NonFiniteError, OptionError, ShapeError
from genprior.sobolev import (
    NotDifferentiableError,
    SobolevData,
    TwoLayerReLU,
    choose_mode,
    directional_derivatives,
    gram_matrix,
    jacobian_directions,
    limit_gram_matrix,
    make_sobolev_data,
    min_separation,
    random_directions,
    sample_separated_sphere,
    sobolev_loss,
    sobolev_terms,
    tangent_directions,
)
from genprior.sobolev.convergence import ConvergenceConfig, run_convergence
from genprior.sobolev.regression import RegressionConfig, run_one, run_regression
from genprior.sobolev.training import mlp

MODES = ("forward", "reverse")


def _net(dim=3, outputs=2, seed=0):
    return mlp(dim, (16, 16), outputs, seed=seed, dtype=torch.float64)


def _finite_difference(model, x, v, h=1e-6):
    """Central differences along every direction: (B, K, P) or (B, K)."""
    with torch.no_grad():
        columns = [
            (model(x + h * v[:, k]) - model(x - h * v[:, k])) / (2 * h) for k in range(v.shape[1])
        ]
    return torch.stack(columns, dim=1)


def _data(batch=6, dim=3, outputs=2, directions=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    return make_sobolev_data(
        _net(dim, outputs, seed=99), x, directions=directions, generator=generator
    )


# Derivatives ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("directions", [1, 2, 5])  # 5 > D exercises the full-Jacobian path
def test_directional_derivative_equals_finite_difference(mode, outputs, directions):
    model = _net(dim=3, outputs=outputs)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    v = random_directions(5, directions, 3, generator=generator, dtype=torch.float64)
    y, dy = directional_derivatives(model, x, v, mode=mode)
    assert dy.shape == (5, directions, outputs)
    torch.testing.assert_close(y, model(x))
    torch.testing.assert_close(dy, _finite_difference(model, x, v), rtol=1e-6, atol=1e-8)


def test_scalar_model_gives_scalar_shapes_and_modes_agree():
    network = _net(dim=4, outputs=1)

    def scalar(x):
        return network(x).squeeze(-1)

    x = torch.randn(7, 4, dtype=torch.float64)
    v = torch.randn(7, 3, 4, dtype=torch.float64)
    y_f, dy_f = directional_derivatives(scalar, x, v, mode="forward")
    y_r, dy_r = directional_derivatives(scalar, x, v, mode="reverse")
    assert y_f.shape == (7,) and dy_f.shape == (7, 3)
    torch.testing.assert_close(dy_f, dy_r)
    torch.testing.assert_close(dy_f, _finite_difference(scalar, x, v), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("outputs,directions", [(1, 1), (4, 2), (2, 8)])
def test_forward_and_reverse_give_the_same_loss_and_parameter_gradient(outputs, directions):
    data = _data(outputs=outputs, directions=directions)
    gradients = []
    for mode in MODES:
        model = _net(outputs=outputs, seed=3)
        loss = sobolev_loss(model, data, mode=mode, derivative_weight=0.7)
        loss.backward()
        gradients.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(gradients[0][0], gradients[1][0])
    for forward, reverse in zip(gradients[0][1], gradients[1][1]):
        torch.testing.assert_close(forward, reverse)


def test_auto_rule_prefers_reverse_for_few_outputs_and_forward_for_many():
    assert choose_mode(outputs=1, directions=16, dim=32) == "reverse"
    assert choose_mode(outputs=64, directions=1, dim=32) == "forward"
    assert choose_mode(outputs=64, directions=64, dim=8) == "forward"  # K > D: D tangents


def test_loss_is_zero_for_the_target_itself_including_full_jacobian():
    target = _net(dim=3, outputs=2, seed=5)
    x = torch.randn(8, 3, dtype=torch.float64)
    for directions in (1, 4, None):
        data = make_sobolev_data(target, x, directions=directions)
        terms = sobolev_terms(target, data)
        assert float(terms.value.detach()) < 1e-24 and float(terms.derivative.detach()) < 1e-24
    full = make_sobolev_data(target, x, directions=None)
    assert torch.equal(full.v, jacobian_directions(8, 3, dtype=torch.float64))
    jacobian = torch.func.vmap(torch.func.jacrev(target))(x)  # (B, P, D)
    torch.testing.assert_close(full.dy, jacobian.transpose(1, 2))


def test_random_directions_are_unit_and_seeded():
    a = random_directions(4, 3, 5, generator=torch.Generator().manual_seed(0))
    b = random_directions(4, 3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    torch.testing.assert_close(a.norm(dim=2), torch.ones(4, 3))


# Bad input -----------------------------------------------------------------------------


def _good():
    data = _data(batch=4, dim=3, outputs=2, directions=2)
    return {"x": data.x, "y": data.y, "v": data.v, "dy": data.dy}


@pytest.mark.parametrize(
    "field,shape,pattern",
    [
        ("x", (4, 3, 1), r"x must have shape \(B, D\)"),
        ("y", (5, 2), r"y must have shape .* B=4"),
        ("v", (4, 2, 5), r"v must have shape \(B, K, D\) = \(4, K, 3\).*received \(4, 2, 5\)"),
        ("v", (3, 2, 3), r"v must have shape"),
        ("dy", (4, 3, 2), r"dy must have shape \(B, K, P\) = \(4, 2, 2\).*received \(4, 3, 2\)"),
        ("dy", (4, 2), r"dy must have shape"),
    ],
)
def test_shape_mismatch_names_the_argument(field, shape, pattern):
    fields = _good()
    fields[field] = torch.zeros(shape, dtype=torch.float64) + 0.5
    with pytest.raises(ShapeError, match=pattern):
        SobolevData(**fields)


@pytest.mark.parametrize("field", ["x", "y", "v", "dy"])
def test_nan_is_rejected_naming_the_argument(field):
    fields = _good()
    fields[field] = fields[field].clone().contiguous()
    fields[field].view(-1)[1] = math.nan
    with pytest.raises(NonFiniteError, match=f"^{field} must be finite; 1 entries"):
        SobolevData(**fields)


def test_zero_direction_is_rejected():
    fields = _good()
    fields["v"] = fields["v"].clone()
    fields["v"][2, 1] = 0
    with pytest.raises(ValueError, match=r"v must hold nonzero directions; v\[2, 1\]"):
        SobolevData(**fields)


def test_integer_tensor_is_rejected():
    fields = _good()
    fields["x"] = torch.ones(4, 3, dtype=torch.int64)
    with pytest.raises(TypeError, match="x must be a floating-point tensor; received torch.int64"):
        SobolevData(**fields)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "make_bad",
    [
        lambda net: lambda x: net(x).detach(),
        lambda net: lambda x: torch.ones(x.shape[0], 2, dtype=x.dtype) * net[0].bias.sum(),
        lambda net: lambda x: net(x).argmax(dim=1),
    ],
    ids=["detached", "constant", "argmax"],
)
def test_model_not_differentiable_in_its_input_is_a_clear_error(mode, make_bad):
    bad = make_bad(_net())
    with pytest.raises(NotDifferentiableError, match="model"):
        sobolev_loss(bad, _data(), mode=mode)


def test_model_output_of_the_wrong_shape_is_rejected():
    with pytest.raises(ShapeError, match=r"model output must have the shape of y, \(6, 2\)"):
        sobolev_loss(_net(outputs=3), _data())
    with pytest.raises(ShapeError, match=r"model must map x \(B, D\) to \(B, P\)"):
        sobolev_loss(lambda x: x.sum(), _data())


def test_bad_mode_and_weights_are_rejected():
    with pytest.raises(
        OptionError, match="mode must be one of auto, forward, reverse; received 'fast'"
    ):
        sobolev_loss(_net(), _data(), mode="fast")
    with pytest.raises(ValueError, match="derivative_weight must be finite and >= 0; received -1"):
        sobolev_loss(_net(), _data(), derivative_weight=-1)
    with pytest.raises(ValueError, match="directions must be a positive int or None; received 0"):
        make_sobolev_data(_net(), torch.zeros(2, 3), directions=0)


def test_overflowing_model_gives_non_finite_error():
    data = _data()

    def huge(x):
        return torch.exp(1000 * x[:, :2])

    with pytest.raises(NonFiniteError, match="Sobolev loss is not finite"):
        sobolev_loss(huge, data)


# Two-layer ReLU setting ----------------------------------------------------------------


@pytest.fixture()
def sphere_problem():
    x = sample_separated_sphere(8, 4, 0.5, seed=2)
    generator = torch.Generator().manual_seed(3)
    v = tangent_directions(x, 2, generator=generator)
    y = torch.randn(8, generator=generator, dtype=torch.float64)
    dy = torch.randn(8, 2, generator=generator, dtype=torch.float64)
    return x, v, y, dy


@pytest.mark.parametrize("mode", MODES)
def test_two_layer_closed_form_equals_autodiff_and_finite_difference(mode, sphere_problem):
    x, v, _, _ = sphere_problem
    model = TwoLayerReLU(4, 256, seed=1)
    closed = model.directional_derivative(x, v)
    _, autodiff = directional_derivatives(model, x, v, mode=mode)
    torch.testing.assert_close(closed, autodiff)
    torch.testing.assert_close(closed, _finite_difference(model, x, v, h=1e-7), atol=1e-6, rtol=0)


def test_two_layer_closed_form_gradient_equals_autograd(sphere_problem):
    x, v, y, dy = sphere_problem
    model = TwoLayerReLU(4, 64, seed=4)
    _, _, closed = model.loss_gradient(x, y, v, dy)
    terms = sobolev_terms(model, (x, y, v, dy))
    # L = 1/2 sum r^2 = (n / 2) value MSE + (n K / 2) derivative MSE
    loss = 0.5 * len(x) * terms.value + 0.5 * dy.numel() * terms.derivative
    loss.backward()
    torch.testing.assert_close(closed, model.weight.grad)


def test_tangent_directions_are_unit_and_orthogonal(sphere_problem):
    x, v, _, _ = sphere_problem
    torch.testing.assert_close(v.norm(dim=2), torch.ones(8, 2, dtype=torch.float64))
    assert float((v @ x.unsqueeze(-1)).abs().max()) < 1e-12


def test_gram_matrix_tends_to_its_infinite_width_limit(sphere_problem):
    x, v, _, _ = sphere_problem
    limit = limit_gram_matrix(x, v)
    finite = gram_matrix(TwoLayerReLU(4, 200_000, seed=0), x, v)
    assert finite.shape == (24, 24)
    assert float((finite - limit).abs().max()) < 0.01
    assert float(torch.linalg.eigvalsh(limit)[0]) > 0


def test_sampler_guarantees_separation_and_tight_places_the_closest_pair():
    x = sample_separated_sphere(30, 3, 0.4, seed=0)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(30, dtype=torch.float64))
    assert min_separation(x) >= 0.4
    tight = sample_separated_sphere(30, 3, 0.1, seed=0, tight=True)
    assert min_separation(tight) == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize(
    "n,dim,separation,pattern",
    [
        (2, 3, 2.5, "two unit vectors are at most 2 apart"),
        (20, 3, 1.5, r"mean squared pairwise distance at most 2n/\(n-1\)"),
        (200, 3, 0.5, "disjoint caps"),
    ],
)
def test_impossible_separation_is_a_clear_error(n, dim, separation, pattern):
    with pytest.raises(ValueError, match=f"separation={separation} is impossible.*{pattern}"):
        sample_separated_sphere(n, dim, separation)


def test_unreached_separation_says_so():
    with pytest.raises(ValueError, match="found only .* lower separation or n"):
        sample_separated_sphere(100, 3, 0.3, max_draws=300)


def test_quick_convergence_reaches_its_threshold(tmp_path):
    # the widest network and the wider separation of the quick sweep
    config = ConvergenceConfig.quick(widths=(4096,), separations=(1.0,))
    document = run_convergence(config, tmp_path)
    (row,) = document["summary"]
    assert row["final_value_loss"] < 1e-6 and row["final_derivative_loss"] < 1e-6
    assert document["width_reaching_tol"] == [{"separation": 1.0, "width_reaching_tol": 4096}]


def test_narrow_network_stalls(tmp_path):
    config = ConvergenceConfig.quick(widths=(4,), separations=(1.0,), steps=1000)
    (row,) = run_convergence(config, tmp_path)["summary"]
    assert row["final_value_loss"] + row["final_derivative_loss"] > 1e-2


def test_regression_run_is_reproducible():
    config = RegressionConfig.quick(steps=20, n_test=50)
    first = run_one(config, "rosenbrock", 2, 10, seed=1)
    second = run_one(config, "rosenbrock", 2, 10, seed=1)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in first]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in second]
    assert [row["method"] for row in first] == ["values", "sobolev", "sobolev-sweep"]
    assert [row["derivative_weight"] for row in first] == [0.0, 1e-3, 1.0]


def test_regression_writes_sensitivity_per_weight(tmp_path):
    config = RegressionConfig.quick(
        functions=("rosenbrock",), dims=(2,), n_train=(10,), steps=10, seeds=2, n_test=50
    )
    document = run_regression(config, tmp_path)
    weights = [row["derivative_weight"] for row in document["sensitivity"]]
    assert sorted(weights) == [0.0, 1e-3, 1.0]
    assert all(row["n_seeds"] == 2 for row in document["sensitivity"])
    assert _header(tmp_path / "sensitivity.csv") == [
        "function",
        "dim",
        "n_train",
        "derivative_weight",
        "test_error_mean",
        "test_error_sem",
    ]


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan")])
def test_regression_rejects_bad_derivative_weight(weight):
    with pytest.raises(ValueError, match="derivative_weight"):
        RegressionConfig(derivative_weight=weight)


# Command line --------------------------------------------------------------------------


def _header(path):
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


@pytest.mark.parametrize(
    "argv,columns,pictures",
    [
        (
            ["convergence", "--widths", "8", "512", "--separations", "1.0", "--steps", "300"],
            ["width", "separation", "final_value_loss", "final_derivative_loss"],
            ["loss_curves.png", "transition.png", "gram.png"],
        ),
        (
            ["regression", "--functions", "rosenbrock", "ackley", "--dims", "2"]
            + ["--n-train", "10", "--steps", "15", "--seeds", "2"],
            ["function", "dim", "n_train", "method", "test_error_mean", "test_error_sem"],
            ["regression.png"],
        ),
        (
            ["distill", "--n-train", "8", "--steps", "10", "--seeds", "2"],
            ["n_train", "method", "test_error_mean", "test_error_sem"]
            + ["derivative_error_mean", "derivative_error_sem"],
            ["distill.png"],
        ),
    ],
    ids=["convergence", "regression", "distill"],
)
def test_cli_writes_the_required_files(argv, columns, pictures, tmp_path, capsys):
    code = main(["sobolev", *argv, "--quick", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert _header(tmp_path / "summary.csv") == columns
    for name in ["results.csv", "summary.json", *pictures]:
        assert (tmp_path / name).stat().st_size > 0
    if argv[0] != "convergence":
        with open(tmp_path / "summary.csv", newline="") as handle:
            assert {row["method"] for row in csv.DictReader(handle)} == {"values", "sobolev"}


@pytest.mark.parametrize("command", [[], ["convergence"], ["regression"], ["distill"]])
def test_every_sobolev_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sobolev", *command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: genprior sobolev" in capsys.readouterr().out


def test_cli_bad_option_is_one_line(tmp_path, capsys):
    code = main(["sobolev", "regression", "--functions", "nope", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genprior: error: function must be one of") and "'nope'" in err

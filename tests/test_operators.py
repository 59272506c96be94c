"""Forward operators: generic tests over the registry, then operator-specific checks."""

import copy
import dataclasses
import functools
import math

import pytest
import torch

from genprior.errors import NonFiniteError, OptionError, ShapeError
from genprior.operators import (
    OPERATORS,
    BoxInpainting,
    Denoising,
    GaussianCS,
    GaussianNoise,
    PhaseRetrieval,
    RandomInpainting,
    SuperResolution,
    make_operator,
)
from genprior.operators.linear import gaussian_matrix

NAMES = list(OPERATORS)
SHAPES = [(1, 28, 28), (1, 8, 8)]
DETERMINISTIC = {"inpaint-box", "superres", "denoise"}  # registry builders that ignore the seed
# GaussianCS stores A^+ rounded to float32, so after .double() A A^+ A = A holds to about
# 1e-7 * cond(A); the masking, pooling and identity operators satisfy it to float64 precision.
PINV_RTOL = 1e-5


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@functools.cache
def _built(name, in_shape):
    return make_operator(name, in_shape)


def build(name, in_shape):
    """A fresh copy of a default registry operator, built once: GaussianCS's A^+ costs an SVD."""
    return copy.deepcopy(_built(name, in_shape))


def linear_double(name, in_shape=(1, 8, 8)):
    op = build(name, in_shape)
    if not op.linear:
        pytest.skip(f"{name} is not linear")
    return op.double()


# -- generic: every registry entry --------------------------------------------------------------
def test_registry_names():
    assert set(OPERATORS) == {
        "cs",
        "inpaint-random",
        "inpaint-box",
        "superres",
        "denoise",
        "phase",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPERATORS["cs"].default_param = 3


@pytest.mark.parametrize("in_shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_output_shapes(name, in_shape):
    op = build(name, in_shape)
    y = op(randn(3, *in_shape))
    assert y.shape == (3, *op.out_shape)
    assert torch.isfinite(y).all()
    if op.linear:
        assert op.adjoint(y).shape == (3, *in_shape)
        assert op.pseudo_inverse(y).shape == (3, *in_shape)


@pytest.mark.parametrize("name", NAMES)
def test_batched_equals_per_item(name):
    op = build(name, (1, 8, 8))
    x = randn(3, 1, 8, 8)
    torch.testing.assert_close(op(x), torch.cat([op(x[i : i + 1]) for i in range(3)]))
    if op.linear:
        y = op(x)
        per_item = torch.cat([op.adjoint(y[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(op.adjoint(y), per_item)


@pytest.mark.parametrize("name", NAMES)
def test_seeds(name):
    x = randn(2, 1, 8, 8)
    y0 = make_operator(name, (1, 8, 8), seed=0)(x)
    torch.testing.assert_close(make_operator(name, (1, 8, 8), seed=0)(x), y0, rtol=0, atol=0)
    y1 = make_operator(name, (1, 8, 8), seed=1)(x)
    if name in DETERMINISTIC:
        torch.testing.assert_close(y1, y0, rtol=0, atol=0)
    else:
        assert not torch.equal(y1, y0)


@pytest.mark.parametrize("in_shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_adjointness(name, in_shape):
    op = linear_double(name, in_shape)
    x = randn(3, *in_shape, seed=1, dtype=torch.float64)
    y = randn(3, *op.out_shape, seed=2, dtype=torch.float64)
    ax, aty = op(x), op.adjoint(y)
    scale = ax.norm() * y.norm() + x.norm() * aty.norm()
    assert abs((ax * y).sum() - (x * aty).sum()) <= 1e-10 * scale


@pytest.mark.parametrize("name", NAMES)
def test_pseudo_inverse_properties(name):
    op = linear_double(name)
    x = randn(3, 1, 8, 8, seed=1, dtype=torch.float64)
    y = randn(3, *op.out_shape, seed=2, dtype=torch.float64)
    ax, pinv_y = op(x), op.pseudo_inverse(y)
    torch.testing.assert_close(op(op.pseudo_inverse(ax)), ax, rtol=PINV_RTOL, atol=PINV_RTOL)
    torch.testing.assert_close(
        op.pseudo_inverse(op(pinv_y)), pinv_y, rtol=PINV_RTOL, atol=PINV_RTOL
    )


@pytest.mark.parametrize("name", NAMES)
def test_bad_signal(name):
    op = build(name, (1, 8, 8))
    with pytest.raises(
        ShapeError, match=r"x must have shape \(B, 1, 8, 8\); received \(3, 1, 8, 7\)"
    ):
        op(torch.zeros(3, 1, 8, 7))
    with pytest.raises(ShapeError, match="x must have shape"):
        op(torch.zeros(1, 8, 8))
    for bad in (math.nan, math.inf):
        x = torch.zeros(3, 1, 8, 8)
        x[1, 0, 2, 3] = bad
        with pytest.raises(NonFiniteError, match="x holds NaN or infinite"):
            op(x)


@pytest.mark.parametrize("name", NAMES)
def test_bad_measurements(name):
    op = build(name, (1, 8, 8))
    if not op.linear:
        pytest.skip(f"{name} is not linear")
    wrong = (op.out_shape[0] + 1, *op.out_shape[1:])
    for method in (op.adjoint, op.pseudo_inverse):
        with pytest.raises(ShapeError, match="y must have shape"):
            method(torch.zeros(3, *wrong))
        y = torch.zeros(3, *op.out_shape)
        y.view(-1)[0] = math.nan
        with pytest.raises(NonFiniteError, match="y holds NaN"):
            method(y)


def test_unknown_name():
    with pytest.raises(
        OptionError, match="operator name must be one of cs, inpaint-random, .*'x'"
    ):
        make_operator("x", (1, 8, 8))


def test_default_param_used():
    assert make_operator("cs", (1, 8, 8)).out_shape == (OPERATORS["cs"].default_param,)
    assert make_operator("cs", (1, 8, 8), 7).out_shape == (7,)


# -- compressed sensing and phase retrieval -----------------------------------------------------
def test_gaussian_cs_variance():
    a = gaussian_matrix((1, 28, 28), 200, seed=0)  # 156,800 entries, float64
    assert a.shape == (200, 784)
    torch.testing.assert_close(
        GaussianCS((1, 8, 8), 20, seed=7).matrix,
        gaussian_matrix((1, 8, 8), 20, seed=7).float(),
        rtol=0,
        atol=0,
    )
    assert abs(a.mean()) < 1e-3
    assert abs(a.var() * 200 - 1) < 0.05


def test_gaussian_cs_minimum_norm():
    op = GaussianCS((1, 8, 8), 20, seed=4).double()
    a, y = op.matrix, randn(2, 20, dtype=torch.float64)
    expected = torch.linalg.solve(a @ a.T, y.T).T @ a  # A^T (A A^T)^-1 y, in the row space
    torch.testing.assert_close(op.pseudo_inverse(y).flatten(1), expected, rtol=1e-5, atol=1e-5)


def test_phase_retrieval_shares_the_cs_matrix():
    cs, phase = GaussianCS((1, 8, 8), 30, seed=3), PhaseRetrieval((1, 8, 8), 30, seed=3)
    torch.testing.assert_close(phase.matrix, cs.matrix, rtol=0, atol=0)
    x = randn(2, 1, 8, 8)
    torch.testing.assert_close(phase(x), cs(x).abs())


def test_phase_retrieval_is_not_linear():
    op = PhaseRetrieval((1, 8, 8), 30)
    with pytest.raises(TypeError, match="PhaseRetrieval is not linear and has no adjoint"):
        op.adjoint(torch.zeros(2, 30))
    with pytest.raises(TypeError, match="no pseudo_inverse"):
        op.pseudo_inverse(torch.zeros(2, 30))


@pytest.mark.parametrize("cls", [GaussianCS, PhaseRetrieval])
@pytest.mark.parametrize("m", [0, 65, 2.5, True])
def test_bad_m(cls, m):
    with pytest.raises(ValueError, match=rf"m must be an integer in 1\.\.64 .*received {m!r}"):
        cls((1, 8, 8), m)


# -- inpainting ---------------------------------------------------------------------------------
def test_random_inpainting_count():
    op = RandomInpainting((1, 28, 28), 0.25)
    assert op.out_shape == (196,)
    assert op.observed_mask.shape == (1, 28, 28)
    assert op.observed_mask.sum() == 196
    assert RandomInpainting((1, 8, 8), 1e-6).out_shape == (1,)
    assert RandomInpainting((1, 8, 8), 1).out_shape == (64,)


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1, math.nan, "0.5"])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]; received"):
        RandomInpainting((1, 8, 8), fraction)


def test_box_inpainting():
    op = BoxInpainting((2, 28, 28), 10)
    assert op.out_shape == (2 * (784 - 100),)
    hidden = ~op.observed_mask
    assert hidden[:, 9:19, 9:19].all() and hidden.sum() == 200
    x = randn(1, 2, 28, 28)
    torch.testing.assert_close(op.pseudo_inverse(op(x)), x * op.observed_mask)
    placed = [BoxInpainting((1, 28, 28), 6, seed=s) for s in range(4)]
    assert len({(b.top, b.left) for b in placed}) > 1
    again = BoxInpainting((1, 28, 28), 6, seed=2)
    assert (again.top, again.left) == (placed[2].top, placed[2].left)


@pytest.mark.parametrize("size", [0, 8, 9, 2.0])
def test_bad_box_size(size):
    with pytest.raises(ValueError, match=r"size must be an integer in 1\.\.7 .*received"):
        BoxInpainting((1, 8, 8), size)


def test_box_needs_an_image_shape():
    with pytest.raises(ShapeError, match=r"in_shape must be \(C, H, W\).*received \(64,\)"):
        BoxInpainting((64,), 2)


# -- super-resolution and denoising -------------------------------------------------------------
def test_superres_of_a_constant_is_the_constant():
    op = SuperResolution((1, 28, 28), 4)
    assert op.out_shape == (1, 7, 7)
    y = op(torch.full((2, 1, 28, 28), 0.7))
    torch.testing.assert_close(y, torch.full((2, 1, 7, 7), 0.7))
    torch.testing.assert_close(op.pseudo_inverse(y), torch.full((2, 1, 28, 28), 0.7))


@pytest.mark.parametrize(
    ("factor", "match"),
    [(3, "factor must divide H = 28 and W = 28"), (0, "factor must be an integer in 1..28")],
)
def test_bad_factor(factor, match):
    with pytest.raises(ValueError, match=match):
        SuperResolution((1, 28, 28), factor)


def test_denoising_is_identity_copy():
    x = randn(2, 1, 8, 8)
    y = Denoising((1, 8, 8))(x)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    assert y.data_ptr() != x.data_ptr()


# -- noise --------------------------------------------------------------------------------------
def test_noise_reproducible():
    noise, y = GaussianNoise(0.1), torch.zeros(3, 50)
    torch.testing.assert_close(noise(y, seed=5), noise(y, seed=5), rtol=0, atol=0)
    torch.testing.assert_close(noise(y), noise(y, seed=0), rtol=0, atol=0)
    generated = noise(y, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(generated, noise(y, seed=5), rtol=0, atol=0)
    assert not torch.equal(noise(y, seed=5), noise(y, seed=6))
    with pytest.raises(ValueError, match="seed or generator, not both"):
        noise(y, seed=1, generator=torch.Generator())


def test_noise_zero_std_is_a_copy():
    y = randn(3, 20)
    out = GaussianNoise(0)(y)
    torch.testing.assert_close(out, y, rtol=0, atol=0)
    assert out.data_ptr() != y.data_ptr()


def test_noise_empirical_std():
    y = torch.full((10, 10_000), 2.0, dtype=torch.float64)
    out = GaussianNoise(0.3)(y, seed=1)
    assert out.dtype == torch.float64
    assert abs((out - y).std() / 0.3 - 1) < 0.02
    assert abs((out - y).mean()) < 0.01


@pytest.mark.parametrize("std", [-0.1, math.nan, math.inf, None])
def test_bad_noise_std(std):
    with pytest.raises(ValueError, match=r"std must be a finite number >= 0; received"):
        GaussianNoise(std)

"""Linear forward operators: compressed sensing, inpainting, super-resolution, denoising.

Each maps signals x (B, *in_shape), for images (B, C, H, W), to measurements y (B, *out_shape).
D = prod(in_shape) is the signal size and M the number of measurements. Every operator here
provides the adjoint A^T and the pseudo-inverse A^+ (the minimum-norm least-squares solution).
"""

import logging
import math
import numbers

import torch
import torch.nn.functional as F

from genprior.errors import ShapeError
from genprior.operators.base import Operator

logger = logging.getLogger(__name__)


def gaussian_matrix(in_shape: tuple[int, ...], m: int, *, seed: int = 0) -> torch.Tensor:
    """The compressed-sensing matrix A with i.i.d. N(0, 1/M) entries, in float64.

    Drawn in float64 from ``torch.Generator().manual_seed(seed)``, so a seed gives the same
    matrix whatever the default dtype; callers cast it.

    Args:
        in_shape: shape of one signal; D = prod(in_shape).
        m: M, the number of measurements, an integer in 1..D.
        seed: seed of the generator.

    Returns:
        A, (M, D), float64.
    """
    d = math.prod(check_in_shape(in_shape))
    m = _check_int("m", m, 1, d, f" (D, the signal size of in_shape {tuple(in_shape)})")
    generator = _generator(seed)
    return torch.randn(m, d, generator=generator, dtype=torch.float64) / math.sqrt(m)


class GaussianCS(Operator):
    """Gaussian compressed sensing: y = A x with A (M, D) of i.i.d. N(0, 1/M) entries.

    A and its pseudo-inverse are registered buffers, so ``.double()`` or ``.to(device)``
    converts them. A^+ is computed in float64 (Cholesky of A A^T) and stored in the default
    dtype: after ``.double()`` of a float32-built operator it carries float32 rounding
    (A A^+ A = A to about 1e-7 * cond(A) relative), while A and A^T stay exact transposes.

    Args:
        in_shape: shape of one signal, e.g. (C, H, W).
        m: M, the number of measurements, an integer in 1..D.
        seed: seed of the matrix (see :func:`gaussian_matrix`).
    """

    def __init__(self, in_shape: tuple[int, ...], m: int, *, seed: int = 0) -> None:
        a = gaussian_matrix(in_shape, m, seed=seed)  # (M, D)
        super().__init__(in_shape, (a.shape[0],))
        self.seed = seed
        dtype = torch.get_default_dtype()
        self.register_buffer("A", a.to(dtype))
        self.register_buffer("A_pinv", _right_inverse(a).to(dtype))  # (D, M)
        logger.debug("GaussianCS: built A %s and its pseudo-inverse", tuple(a.shape))

    @property
    def matrix(self) -> torch.Tensor:
        """A, (M, D)."""
        return self.A

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, M)."""
        return x.flatten(1) @ self.A.T

    def apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(B, M) -> (B, *in_shape)."""
        return (y @ self.A).view(-1, *self.in_shape)

    def apply_pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """(B, M) -> (B, *in_shape), the minimum-norm solution of A x = y."""
        return (y @ self.A_pinv.T).view(-1, *self.in_shape)


def _right_inverse(a: torch.Tensor) -> torch.Tensor:
    """A^+ = A^T (A A^T)^-1 for A (M, D) of full row rank (Gaussian A with M <= D), by Cholesky.

    Much cheaper than an SVD-based pinv and equal to it when A has full row rank.
    """
    factor = torch.linalg.cholesky(a @ a.T)  # (M, M)
    return torch.cholesky_solve(a, factor).T  # (D, M)


class _Masking(Operator):
    """Observes the entries ``observed_index`` (M,) of the flattened signal: y (B, M).

    A A^T = I, so the pseudo-inverse is the adjoint: observed values back in place, zeros
    elsewhere.
    """

    def __init__(self, in_shape: tuple[int, ...], observed_index: torch.Tensor) -> None:
        super().__init__(in_shape, (observed_index.numel(),))
        self.register_buffer("observed_index", observed_index)

    @property
    def observed_mask(self) -> torch.Tensor:
        """Boolean mask of shape in_shape, True where an entry is observed."""
        d, device = math.prod(self.in_shape), self.observed_index.device
        mask = torch.zeros(d, dtype=torch.bool, device=device)
        return mask.index_fill(0, self.observed_index, True).view(self.in_shape)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, M)."""
        return x.flatten(1)[:, self.observed_index]

    def apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(B, M) -> (B, *in_shape), zeros at the hidden entries."""
        x = y.new_zeros(y.shape[0], math.prod(self.in_shape))
        return x.index_copy(1, self.observed_index, y).view(-1, *self.in_shape)

    def apply_pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`apply_adjoint`."""
        return self.apply_adjoint(y)


class RandomInpainting(_Masking):
    """Observes round(fraction * D) randomly chosen entries (at least one): y (B, M).

    Args:
        in_shape: shape of one signal, e.g. (C, H, W).
        fraction: share of observed entries, in (0, 1].
        seed: seed of the choice of entries.
    """

    def __init__(self, in_shape: tuple[int, ...], fraction: float, *, seed: int = 0) -> None:
        d = math.prod(check_in_shape(in_shape))
        real = isinstance(fraction, numbers.Real) and not isinstance(fraction, bool)
        if not real or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be a number in (0, 1]; received {fraction!r}")
        m = max(1, round(fraction * d))
        index = torch.randperm(d, generator=_generator(seed))[:m].sort().values
        super().__init__(in_shape, index)
        self.fraction = float(fraction)
        self.seed = seed


class BoxInpainting(_Masking):
    """Hides a size x size square of every channel; observes the rest: y (B, M).

    M = C * (H * W - size**2); the observed entries keep their flattened order.

    Args:
        in_shape: (C, H, W).
        size: side of the square, in 1..min(H, W), leaving at least one pixel observed.
        seed: None centres the square; an integer places it at a seeded random position.
    """

    def __init__(self, in_shape: tuple[int, ...], size: int, *, seed: int | None = None) -> None:
        c, h, w = check_in_shape(in_shape, image=True)
        largest = min(h, w) - (h == w)  # a square image must keep a pixel observed
        hint = f" (the square must fit in H x W = {h} x {w} and leave a pixel observed)"
        size = _check_int("size", size, 1, largest, hint)
        if seed is None:
            top, left = (h - size) // 2, (w - size) // 2
        else:
            generator = _generator(seed)
            top = int(torch.randint(h - size + 1, (1,), generator=generator))
            left = int(torch.randint(w - size + 1, (1,), generator=generator))
        hidden = torch.zeros(c, h, w, dtype=torch.bool)
        hidden[:, top : top + size, left : left + size] = True
        super().__init__(in_shape, (~hidden).flatten().nonzero().squeeze(1))
        self.size, self.top, self.left = size, top, left


class SuperResolution(Operator):
    """Average pooling by an integer factor: (B, C, H, W) -> (B, C, H/f, W/f).

    The adjoint is nearest-neighbour upsampling divided by f**2; the pseudo-inverse is
    nearest-neighbour upsampling.

    Args:
        in_shape: (C, H, W), with H and W divisible by factor.
        factor: f, the downsampling factor, an integer >= 1.
    """

    def __init__(self, in_shape: tuple[int, ...], factor: int) -> None:
        c, h, w = check_in_shape(in_shape, image=True)
        factor = _check_int("factor", factor, 1, min(h, w))
        if h % factor or w % factor:
            raise ValueError(f"factor must divide H = {h} and W = {w}; received {factor}")
        super().__init__(in_shape, (c, h // factor, w // factor))
        self.factor = factor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H/f, W/f)."""
        return F.avg_pool2d(x, self.factor)

    def apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H/f, W/f) -> (B, C, H, W)."""
        return self._upsample(y) / self.factor**2

    def apply_pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H/f, W/f) -> (B, C, H, W)."""
        return self._upsample(y)

    def _upsample(self, y: torch.Tensor) -> torch.Tensor:
        return y.repeat_interleave(self.factor, dim=-2).repeat_interleave(self.factor, dim=-1)


class Denoising(Operator):
    """The identity, y = x (a copy); the noise is added separately.

    Args:
        in_shape: shape of one signal; also the shape of one measurement.
    """

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        in_shape = check_in_shape(in_shape)
        super().__init__(in_shape, in_shape)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, *in_shape)."""
        return x.clone()

    def apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, *in_shape)."""
        return y.clone()

    def apply_pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, *in_shape)."""
        return y.clone()


def check_in_shape(in_shape: tuple[int, ...], *, image: bool = False) -> tuple[int, ...]:
    """Return in_shape as a tuple of ints; raise :class:`ShapeError` unless it is valid.

    Args:
        in_shape: shape of one signal: positive integers, exactly (C, H, W) if ``image``.
        image: require three dimensions.
    """
    shape = tuple(in_shape) if isinstance(in_shape, tuple | list) else ()
    ok = bool(shape) and all(_is_int(s) and s >= 1 for s in shape)
    if not ok or (image and len(shape) != 3):
        expected = "(C, H, W), positive integers" if image else "a tuple of positive integers"
        raise ShapeError(f"in_shape must be {expected}; received {in_shape!r}")
    return tuple(int(s) for s in shape)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int, high: int, hint: str = "") -> int:
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}{hint}; received {value!r}")
    return int(value)


def _generator(seed: int) -> torch.Generator:
    if not _is_int(seed):
        raise TypeError(f"seed must be an integer; received {seed!r}")
    return torch.Generator().manual_seed(int(seed))

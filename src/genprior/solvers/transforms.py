"""Orthonormal sparsifying transforms of images, held as explicit orthogonal matrices.

A transform of images of shape (C, H, W) is a (D, D) orthogonal matrix Psi, D = C*H*W, acting
on each channel separately (Psi is block diagonal with C equal (H*W, H*W) blocks). Coefficients
are c = Psi x_flat and images x_flat = Psi^T c, where x_flat is the row-major flattening of
(C, H, W); batches are matrix products. Explicit matrices suit small images (D = 784 for
MNIST); the matrix takes D^2 numbers.

Coefficient order, per channel:

- DCT: the (H, W) array of scipy.fft.dctn(x, norm="ortho") flattened row-major, so
  c[kh * W + kw] pairs vertical frequency kh with horizontal frequency kw.
- Wavelet: with ``coeffs = pywt.wavedec2(x, wavelet, mode="periodization", level=L)``, the
  approximation cA_L flattened, then for each level from the coarsest to the finest its
  details (cH, cV, cD) in pywt's order, each flattened row-major.
"""

import logging
import math
import warnings
from collections.abc import Callable

import numpy as np
import torch

from genprior.errors import OptionError, ShapeError, check_choice

logger = logging.getLogger(__name__)

__all__ = [
    "TRANSFORMS",
    "OrthogonalTransform",
    "dct_transform",
    "make_transform",
    "wavelet_transform",
]

ORTHOGONALITY_TOL = 1e-6


class OrthogonalTransform:
    """An orthonormal transform of images (C, H, W), given by its (D, D) matrix Psi.

    Args:
        matrix: the orthogonal matrix Psi, (D, D) with D = C*H*W; stored in float64.
        shape: the image shape (C, H, W).
        name: a short label for logs and reprs, e.g. "dct".

    Raises:
        ShapeError: if matrix is not (D, D) for the given shape.
        ValueError: if Psi Psi^T differs from the identity by more than 1e-6 anywhere.
    """

    def __init__(self, matrix: torch.Tensor, shape: tuple[int, int, int], name: str) -> None:
        self.shape = _check_shape(shape)
        self.name = name
        dim = math.prod(self.shape)
        if matrix.shape != (dim, dim):
            raise ShapeError(
                f"matrix must have shape ({dim}, {dim}) for images of shape {self.shape}; "
                f"received {tuple(matrix.shape)}"
            )
        self._matrix = matrix.detach().to(dtype=torch.float64, device="cpu").contiguous()
        err = orthogonality_error(self._matrix)
        if not err <= ORTHOGONALITY_TOL:
            raise ValueError(
                f"{name} transform matrix must be orthogonal (max |Psi Psi^T - I| <= "
                f"{ORTHOGONALITY_TOL:g}); received one with max |Psi Psi^T - I| = {err:.3g}"
            )
        self._cast: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    @property
    def matrix(self) -> torch.Tensor:
        """Psi, (D, D) float64 on the CPU; rows are the basis images, flattened."""
        return self._matrix

    @property
    def dim(self) -> int:
        """D = C*H*W."""
        return self._matrix.shape[0]

    def matrix_like(self, t: torch.Tensor) -> torch.Tensor:
        """Psi (D, D) in the dtype and on the device of t (cached)."""
        key = (t.dtype, t.device)
        if key not in self._cast:
            self._cast[key] = self._matrix.to(dtype=t.dtype, device=t.device)
        return self._cast[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Coefficients c = Psi x: images (B, C, H, W) -> (B, D)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            raise ShapeError(
                f"x must have shape (B, {', '.join(map(str, self.shape))}); "
                f"received {tuple(x.shape)}"
            )
        return x.flatten(1) @ self.matrix_like(x).T

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """Images x = Psi^T c: coefficients (B, D) -> (B, C, H, W)."""
        if c.ndim != 2 or c.shape[1] != self.dim:
            raise ShapeError(f"c must have shape (B, {self.dim}); received {tuple(c.shape)}")
        return (c @ self.matrix_like(c)).reshape(c.shape[0], *self.shape)

    def __repr__(self) -> str:
        return f"OrthogonalTransform(name={self.name!r}, shape={self.shape})"


def orthogonality_error(matrix: torch.Tensor) -> float:
    """max |Psi Psi^T - I| of a square matrix (D, D), computed in float64."""
    m = matrix.to(torch.float64)
    eye = torch.eye(m.shape[0], dtype=torch.float64, device=m.device)
    return (m @ m.T - eye).abs().max().item()


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix T (n, n), float64: T[k, j] = s_k cos(pi (2j + 1) k / 2n).

    s_0 = sqrt(1/n) and s_k = sqrt(2/n) for k > 0, so that T x = scipy.fft.dct(x, norm="ortho").
    """
    j = torch.arange(n, dtype=torch.float64)
    k = j[:, None]
    t = torch.cos(math.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2 / n)
    t[0] /= math.sqrt(2)
    return t


def dct_transform(shape: tuple[int, int, int]) -> OrthogonalTransform:
    """The separable orthonormal 2-D DCT-II of each channel of images (C, H, W).

    Row-major flattening turns X = T_H x T_W^T into kron(T_H, T_W) x_flat; channels get the
    same block, kron(I_C, T_H ⊗ T_W).
    """
    c, h, w = _check_shape(shape)
    block = torch.kron(dct_matrix(h), dct_matrix(w))
    return OrthogonalTransform(torch.block_diag(*[block] * c), (c, h, w), "dct")


def wavelet_transform(
    shape: tuple[int, int, int], wavelet: str = "db1", *, level: int | None = None
) -> OrthogonalTransform:
    """The orthonormal 2-D discrete wavelet transform of each channel of images (C, H, W).

    Built column by column: pywt.wavedec2 with mode="periodization" is applied to every basis
    image. Periodization keeps the transform square and orthogonal for an orthogonal wavelet
    as long as every level's input has even height and width.

    Args:
        shape: the image shape (C, H, W); H and W must be even.
        wavelet: a discrete orthogonal wavelet name known to PyWavelets, e.g. "db1" (Haar),
            "db2", "sym4".
        level: decomposition levels; None takes the largest number for which every level's
            input has even sides (2 for 28x28, 4 for 16x16).

    Raises:
        OptionError: for a wavelet name PyWavelets does not know.
        ValueError: for odd H or W, a level out of range, or a non-orthogonal result (for
            instance a biorthogonal wavelet).
    """
    import pywt

    c, h, w = _check_shape(shape)
    if wavelet not in pywt.wavelist(kind="discrete"):
        raise OptionError(
            "wavelet must be a discrete wavelet known to PyWavelets (see "
            f"pywt.wavelist(kind='discrete')), e.g. 'db1', 'db2', 'sym4'; received {wavelet!r}"
        )
    max_level = _even_levels(h, w)
    if max_level == 0:
        raise ValueError(f"wavelet_transform needs even H and W; received shape {(c, h, w)}")
    if level is None:
        level = max_level
    elif not (isinstance(level, int) and 1 <= level <= max_level):
        raise ValueError(
            f"level must be an int in [1, {max_level}] for {h}x{w} images (every level's "
            f"input must have even sides); received {level!r}"
        )
    block = torch.from_numpy(_wavedec2_matrix(h, w, wavelet, level))
    if block.shape != (h * w, h * w):
        raise ValueError(
            f"wavelet {wavelet!r} with level {level} gives {block.shape[0]} coefficients for "
            f"{h * w} pixels; the transform is not square"
        )
    logger.debug("wavelet transform %s, %d levels, shape %s", wavelet, level, (c, h, w))
    return OrthogonalTransform(torch.block_diag(*[block] * c), (c, h, w), f"wavelet-{wavelet}")


TRANSFORMS: dict[str, Callable[[tuple[int, int, int]], OrthogonalTransform]] = {
    "dct": dct_transform,
    "wavelet": wavelet_transform,
}


def make_transform(name: str, shape: tuple[int, int, int]) -> OrthogonalTransform:
    """Build the registered transform ``name`` ("dct" or "wavelet") for images (C, H, W)."""
    check_choice("transform", name, tuple(TRANSFORMS))
    return TRANSFORMS[name](shape)


def _wavedec2_matrix(h: int, w: int, wavelet: str, level: int) -> np.ndarray:
    """The (n_coeffs, H*W) matrix of pywt.wavedec2 on (H, W) images, in the module's order."""
    import pywt

    basis = np.eye(h * w).reshape(h * w, h, w)
    with warnings.catch_warnings():
        # pywt warns when the level exceeds dwt_max_level (boundary effects); periodization
        # stays orthogonal there, which OrthogonalTransform checks.
        warnings.filterwarnings("ignore", message="Level value of", category=UserWarning)
        coeffs = pywt.wavedec2(basis, wavelet, mode="periodization", level=level, axes=(-2, -1))
    parts = [coeffs[0]] + [d for details in coeffs[1:] for d in details]
    return np.concatenate([p.reshape(h * w, -1) for p in parts], axis=1).T.copy()


def _even_levels(h: int, w: int) -> int:
    """The number of times (H, W) can be halved while both sides are even."""
    levels = 0
    while h % 2 == 0 and w % 2 == 0:
        h, w, levels = h // 2, w // 2, levels + 1
    return levels


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return shape as a tuple of three positive ints (C, H, W), or raise ShapeError."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) < 1:
        raise ShapeError(
            f"shape must be an image shape (C, H, W) of three positive ints; received {shape!r}"
        )
    return out

"""Linear building blocks: POD bases, DEIM and Q-DEIM sample points, gappy-POD reconstruction."""

import numpy as np
import scipy.linalg

from genprior.errors import OptionError, ShapeError


def pod(
    snapshots: np.ndarray, rank: int, *, clip: bool = False, name: str = "latent size (POD rank)"
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rank`` left singular vectors of the snapshot matrix.

    Args:
        snapshots: (N, T) one snapshot per column.
        rank: K, the number of modes; at most the numerical rank of ``snapshots``.
        clip: give fewer modes when the numerical rank is below ``rank`` instead of raising.
        name: what ``rank`` is called in the error message (the option the caller set).

    Returns:
        basis: (N, K) orthonormal columns.
        singular_values: all singular values, descending.
    """
    if snapshots.ndim != 2:
        raise ShapeError(f"snapshots must be (N, T); received shape {snapshots.shape}")
    if 4 * (rank + 20) < min(snapshots.shape):
        u, s = _randomized_svd(snapshots, rank + 20)
    else:
        u, s, _ = scipy.linalg.svd(snapshots, full_matrices=False, lapack_driver="gesdd")
    numerical_rank = int((s > s[0] * max(snapshots.shape) * np.finfo(float).eps).sum())
    if clip:
        rank = min(rank, numerical_rank)
    if not isinstance(rank, int | np.integer) or not 1 <= rank <= numerical_rank:
        raise OptionError(
            f"{name} must be an integer in [1, {numerical_rank}], the numerical "
            f"rank of the {snapshots.shape[1]} snapshots; received {rank!r}"
        )
    return u[:, :rank], s


def _randomized_svd(a: np.ndarray, k: int, power: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The leading k singular vectors (N, k) and values (k,) of a (N, T) by a randomized range
    finder with ``power`` QR-orthonormalised power iterations (Halko, Martinsson and Tropp,
    SIAM Review 2011), seeded, so the same input gives the same basis."""
    sketch = a @ np.random.default_rng(0).standard_normal((a.shape[1], k))
    q, _ = np.linalg.qr(sketch)
    for _ in range(power):
        q, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ q)
    u, s, _ = np.linalg.svd(q.T @ a, full_matrices=False)
    return q @ u, s


def qdeim(basis: np.ndarray, n_points: int | None = None) -> np.ndarray:
    """Q-DEIM (Drmac and Gugercin, arXiv 1505.00370): the first pivots of a column-pivoted QR of
    basis^T; sorted row indices (n_points,), n_points <= K (default K).

    Args:
        basis: (N, K) with independent columns.
    """
    n_points = basis.shape[1] if n_points is None else n_points
    if not 1 <= n_points <= min(basis.shape):
        raise OptionError(
            f"Q-DEIM points must be in [1, {min(basis.shape)}] for a basis of shape "
            f"{basis.shape}; received {n_points}"
        )
    _, _, pivots = scipy.linalg.qr(basis.T, mode="economic", pivoting=True)
    return np.sort(pivots[:n_points])


def deim(basis: np.ndarray) -> np.ndarray:
    """DEIM (Chaturantabut and Sorensen, SISC 2010): greedy interpolation points of ``basis``
    (N, K); sorted row indices (K,)."""
    points = [int(np.argmax(np.abs(basis[:, 0])))]
    for k in range(1, basis.shape[1]):
        coef = np.linalg.solve(basis[points, :k], basis[points, k])
        error = basis[:, k] - basis[:, :k] @ coef
        points.append(int(np.argmax(np.abs(error))))
    return np.sort(np.array(points))


def sample_points(basis: np.ndarray, n_points: int, method: str = "qdeim") -> np.ndarray:
    """Sample rows by ``qdeim`` or ``deim`` on the first ``n_points`` columns of ``basis``."""
    if method == "qdeim":
        return qdeim(basis[:, :n_points])
    if method == "deim":
        return deim(basis[:, :n_points])
    raise OptionError(f"sampling method must be one of qdeim, deim; received {method!r}")


class GappyPOD:
    """Reconstruct a full state from its values on some rows: y ~ ref + basis (basis[rows])^+
    (y[rows] - ref[rows]), least squares when there are more rows than modes.

    Args:
        basis: (N, K) POD basis of the full states (minus ``reference``).
        rows: (P,) the rows that are known, P >= K.
        reference: (N,) affine offset; zero if None.
    """

    def __init__(
        self, basis: np.ndarray, rows: np.ndarray, reference: np.ndarray | None = None
    ) -> None:
        if len(rows) < basis.shape[1]:
            raise OptionError(
                f"gappy POD needs at least as many rows as modes; received {len(rows)} rows "
                f"for {basis.shape[1]} modes"
            )
        self.basis, self.rows = basis, np.asarray(rows)
        self.reference = np.zeros(basis.shape[0]) if reference is None else reference
        self.pinv = np.linalg.pinv(basis[self.rows])  # (K, P)

    def __call__(self, y_rows: np.ndarray) -> np.ndarray:
        """Full states (..., N) from values on the rows (..., P)."""
        coef = (y_rows - self.reference[self.rows]) @ self.pinv.T
        return self.reference + coef @ self.basis.T

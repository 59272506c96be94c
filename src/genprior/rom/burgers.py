"""The full-order model: 2D viscous Burgers on [0, 1]^2, backward Euler, Newton, sample meshes.

The set-up is Kim, Choi, Widemann and Zohdi's (JCP 451:110841, 2022; arXiv 2009.11990):

    u_t + u u_x + v u_y = (u_xx + u_yy) / Re,   v_t + u v_x + v v_y = (v_xx + v_yy) / Re,

on an ``nx`` x ``nx`` grid of points (boundary included), first-order backward (upwind for
non-negative velocities) differences for convection, central differences for diffusion,
Dirichlet values fixed at their initial values, and the initial condition
``u = v = a sin(2 pi x) sin(2 pi y)`` on [0, 0.5]^2 and 0 elsewhere.

The state holds the interior values, u first then v, each row-major in (y, x): N = 2 m^2 with
m = nx - 2. Each residual row needs six values (its cell, the west, east, south and north
neighbours of the same component, and the other component at its cell): a
:class:`SampleMesh` evaluates the residual and Jacobian on a subset of rows (the sample mesh)
from the state on the rows those need (the stencil mesh) only.
"""

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from genprior.errors import ConvergenceWarning, GenpriorError, NonFiniteError, OptionError

logger = logging.getLogger(__name__)

MIN_GRID, MAX_GRID = 5, 400
MIN_AMPLITUDE, MAX_AMPLITUDE = 0.1, 2.0


class SampleMeshError(GenpriorError, ValueError):
    """A sample mesh holds out-of-range, duplicate or non-integer row indices."""


class SolverDivergedError(NonFiniteError):
    """A Newton or Gauss-Newton solve produced a non-finite or exploding residual."""


@dataclass(frozen=True)
class Burgers2D:
    """The discretised problem (grid, viscosity, time stepping); the parameter ``a`` is separate.

    Args:
        nx: grid points per direction, boundary included (60 in the anchor).
        reynolds: Reynolds number Re (viscosity 1/Re).
        dt: time step of backward Euler.
        t_final: final time T; the trajectory has ``n_steps + 1`` states.
    """

    nx: int = 60
    reynolds: float = 10000.0
    dt: float = 1.0 / 750.0
    t_final: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.nx, int) or not MIN_GRID <= self.nx <= MAX_GRID:
            raise OptionError(
                f"grid nx must be an integer in [{MIN_GRID}, {MAX_GRID}] (points per direction, "
                f"boundary included); received {self.nx!r}"
            )
        for name in ("reynolds", "dt", "t_final"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise OptionError(f"{name} must be a positive number; received {value!r}")

    @property
    def m(self) -> int:
        """Interior points per direction."""
        return self.nx - 2

    @property
    def n_dofs(self) -> int:
        """N, the size of the state (two components)."""
        return 2 * self.m * self.m

    @property
    def n_steps(self) -> int:
        """Number of backward-Euler steps to ``t_final``."""
        return int(round(self.t_final / self.dt))

    @property
    def h(self) -> float:
        """Grid spacing (the same in x and y)."""
        return 1.0 / (self.nx - 1)

    def times(self) -> np.ndarray:
        """The T + 1 times of a trajectory."""
        return self.dt * np.arange(self.n_steps + 1)

    def key(self) -> dict:
        """The settings that determine a trajectory (for caches)."""
        return {"nx": self.nx, "reynolds": self.reynolds, "dt": self.dt, "t_final": self.t_final}


def check_amplitude(a: float) -> float:
    """Return ``a`` as a float if it is a supported parameter value, else raise OptionError."""
    try:
        value = float(a)
    except (TypeError, ValueError):
        value = float("nan")
    if not MIN_AMPLITUDE <= value <= MAX_AMPLITUDE:
        raise OptionError(
            f"parameter a must be a number in [{MIN_AMPLITUDE}, {MAX_AMPLITUDE}] (anchor: "
            f"train 0.9 0.95 1.05 1.1, test 1.0); received {a!r}"
        )
    return value


def initial_fields(problem: Burgers2D, a: float) -> np.ndarray:
    """u and v on the whole grid at t = 0, shape (2, nx, nx) indexed [component, y, x]."""
    a = check_amplitude(a)
    x = np.linspace(0.0, 1.0, problem.nx)
    inside = x <= 0.5
    profile = np.where(inside, np.sin(2 * np.pi * x), 0.0)
    field = a * np.outer(profile, profile)
    return np.stack([field, field])


def initial_state(problem: Burgers2D, a: float) -> np.ndarray:
    """The interior state at t = 0, shape (N,)."""
    return initial_fields(problem, a)[:, 1:-1, 1:-1].reshape(-1)


def state_to_fields(problem: Burgers2D, y: np.ndarray, a: float) -> np.ndarray:
    """Interior state(s) (..., N) to whole-grid fields (..., 2, nx, nx) with the boundary."""
    m = problem.m
    fields = np.broadcast_to(
        initial_fields(problem, a), y.shape[:-1] + (2, problem.nx, problem.nx)
    )
    fields = fields.copy()
    fields[..., 1:-1, 1:-1] = y.reshape(y.shape[:-1] + (2, m, m))
    return fields


def neighbour_table(problem: Burgers2D, a: float) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the six state indices its residual needs, and boundary values.

    Returns:
        index: (N, 6) int, columns self, west, east, south, north, other component; -1 where
            the neighbour is a boundary point.
        boundary: (N, 6) float, the Dirichlet value used where ``index`` is -1, else 0.
    """
    m, nx = problem.m, problem.nx
    full = initial_fields(problem, a)
    # dof numbers on the whole grid, -1 on the boundary: (2, nx, nx)
    number = -np.ones((2, nx, nx), dtype=np.int64)
    number[:, 1:-1, 1:-1] = np.arange(2 * m * m).reshape(2, m, m)
    c, j, i = np.meshgrid(np.arange(2), np.arange(1, nx - 1), np.arange(1, nx - 1), indexing="ij")
    c, j, i = c.ravel(), j.ravel(), i.ravel()
    spots = [(c, j, i), (c, j, i - 1), (c, j, i + 1), (c, j - 1, i), (c, j + 1, i), (1 - c, j, i)]
    index = np.stack([number[s] for s in spots], axis=1)
    boundary = np.stack([full[s] for s in spots], axis=1)
    boundary[index >= 0] = 0.0
    return index, boundary


class SampleMesh:
    """Residual and Jacobian of backward Euler on a subset of rows (the sample mesh).

    Args:
        problem: the discretised problem.
        a: the parameter (it fixes the Dirichlet values).
        rows: sample-mesh rows, distinct integers in [0, N); None for all rows.

    Attributes:
        rows: (S,) the sample rows, sorted.
        stencil: (P,) the rows whose values the sample rows need, sorted (P = N when full).
        sample_in_stencil: (S,) positions of the sample rows within ``stencil``.
    """

    def __init__(self, problem: Burgers2D, a: float, rows: np.ndarray | None = None) -> None:
        self.problem = problem
        self.a = check_amplitude(a)
        index, boundary = neighbour_table(problem, a)
        self.rows = np.arange(problem.n_dofs) if rows is None else check_rows(rows, problem)
        index, self.boundary = index[self.rows], boundary[self.rows]
        self.stencil = np.unique(index[index >= 0])
        # local positions into the stencil vector extended by one slot (value 0) for boundaries
        local = np.searchsorted(self.stencil, np.where(index >= 0, index, 0))
        self.local = np.where(index >= 0, local, len(self.stencil))
        self.sample_in_stencil = self.local[:, 0]
        self.is_u = self.rows < problem.n_dofs // 2

    @property
    def n_sample(self) -> int:
        """S, the number of sample rows."""
        return len(self.rows)

    def _values(self, y_stencil: np.ndarray) -> np.ndarray:
        """(S, 6) the values each row needs, from the state on the stencil mesh (P,)."""
        extended = np.append(y_stencil, 0.0)
        return extended[self.local] + self.boundary

    def rhs_and_derivatives(self, y_stencil: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f on the sample rows (S,) and its derivatives by the six needed values (S, 6)."""
        p = self.problem
        h, nu = p.h, 1.0 / p.reynolds
        v = self._values(y_stencil)
        me, west, east, south, north, other = v.T
        vx = np.where(self.is_u, me, other)
        vy = np.where(self.is_u, other, me)
        dx_back, dy_back = (me - west) / h, (me - south) / h
        f = -vx * dx_back - vy * dy_back + nu * (west + east + south + north - 4 * me) / h**2
        d = np.empty_like(v)
        d[:, 0] = -(vx + vy) / h - 4 * nu / h**2 - np.where(self.is_u, dx_back, dy_back)
        d[:, 1] = vx / h + nu / h**2
        d[:, 2] = nu / h**2
        d[:, 3] = vy / h + nu / h**2
        d[:, 4] = nu / h**2
        d[:, 5] = -np.where(self.is_u, dy_back, dx_back)
        return f, d

    def residual_terms(
        self, y_stencil: np.ndarray, y_prev_sample: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Backward-Euler residual r = y - y_prev - dt f(y) on the sample rows (S,) and its
        derivatives by the six needed values (S, 6)."""
        f, d = self.rhs_and_derivatives(y_stencil)
        r = y_stencil[self.sample_in_stencil] - y_prev_sample - self.problem.dt * f
        d = -self.problem.dt * d
        d[:, 0] += 1.0
        return r, d

    def residual(self, y_stencil: np.ndarray, y_prev_sample: np.ndarray) -> np.ndarray:
        """The residual on the sample rows, shape (S,)."""
        return self.residual_terms(y_stencil, y_prev_sample)[0]

    def jacobian(self, y_stencil: np.ndarray) -> sp.csr_matrix:
        """dr/dy on the sample rows by the stencil values, sparse (S, P)."""
        _, d = self.residual_terms(y_stencil, np.zeros(self.n_sample))
        keep = self.local < len(self.stencil)
        rows = np.broadcast_to(np.arange(self.n_sample)[:, None], self.local.shape)
        shape = (self.n_sample, len(self.stencil))
        return sp.csr_matrix((d[keep], (rows[keep], self.local[keep])), shape=shape)

    def residual_and_projected_jacobian(
        self, y_stencil: np.ndarray, y_prev_sample: np.ndarray, basis: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The residual (S,) and dr/dy times ``basis`` (P, K), i.e. (S, K), without sparse
        matrices (for the online phase of reduced models)."""
        r, d = self.residual_terms(y_stencil, y_prev_sample)
        extended = np.vstack([basis, np.zeros((1, basis.shape[1]))])
        return r, np.einsum("sj,sjk->sk", d, extended[self.local])


def check_rows(rows: object, problem: Burgers2D) -> np.ndarray:
    """Validate sample-mesh rows: integers in [0, N), no duplicates, at least one; sorted."""
    array = np.asarray(rows)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise SampleMeshError(
            f"sample mesh must be a non-empty 1-D array of integer rows; received dtype "
            f"{array.dtype} and shape {array.shape}"
        )
    bad = array[(array < 0) | (array >= problem.n_dofs)]
    if bad.size:
        raise SampleMeshError(
            f"sample mesh rows must lie in [0, {problem.n_dofs}) for nx={problem.nx}; "
            f"received out-of-range rows {bad[:5].tolist()}"
        )
    values, counts = np.unique(array, return_counts=True)
    repeated = values[counts > 1]
    if repeated.size:
        raise SampleMeshError(
            f"sample mesh rows must be distinct; received duplicates {repeated[:5].tolist()}"
        )
    return values.astype(np.int64)


@dataclass
class NewtonStats:
    """What a full-order solve did: wall time and Newton iterations per step."""

    seconds: float
    iterations: np.ndarray


def solve_fom(
    problem: Burgers2D,
    a: float,
    *,
    tol: float = 1e-8,
    max_iter: int = 10,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, NewtonStats]:
    """Backward Euler with Newton (sparse LU) on the whole mesh.

    Newton stops when ``||r|| <= tol (1 + ||y_prev||)``. A step that misses the tolerance after
    ``max_iter`` iterations gives a :class:`ConvergenceWarning`; a non-finite or exploding
    residual raises :class:`SolverDivergedError`. Both name the step and the residual.

    Returns:
        states: (T + 1, N) the trajectory, the initial state first.
        stats: wall time and Newton iterations per step (T,).
    """
    mesh = SampleMesh(problem, a)
    states = np.empty((problem.n_steps + 1, problem.n_dofs))
    states[0] = initial_state(problem, a)
    iterations = np.zeros(problem.n_steps, dtype=np.int64)
    start = time.perf_counter()
    for step in range(1, problem.n_steps + 1):
        states[step], iterations[step - 1] = newton_step(
            mesh, states[step - 1], step, tol, max_iter
        )
        if progress is not None:
            progress()
    return states, NewtonStats(time.perf_counter() - start, iterations)


def newton_step(
    mesh: SampleMesh, y_prev: np.ndarray, step: int, tol: float, max_iter: int
) -> tuple[np.ndarray, int]:
    """One backward-Euler step by Newton from ``y_prev`` (N,); the new state and iterations."""
    y = y_prev.copy()
    target = tol * (1.0 + np.linalg.norm(y_prev))
    norm = np.inf
    for iteration in range(1, max_iter + 1):
        r = mesh.residual(y, y_prev)
        norm = check_residual(r, step, iteration, "Newton")
        if norm <= target:
            return y, iteration - 1
        y = y - spla.spsolve(mesh.jacobian(y).tocsc(), r)
    norm = check_residual(mesh.residual(y, y_prev), step, max_iter, "Newton")
    if norm > target:
        warnings.warn(
            f"Newton did not converge at time step {step}: residual {norm:.3e} > {target:.3e} "
            f"after {max_iter} iterations",
            ConvergenceWarning,
            stacklevel=3,
        )
    return y, max_iter


EXPLODED = 1e8


def check_residual(r: np.ndarray, step: int, iteration: int, solver: str) -> float:
    """The residual's norm; raise SolverDivergedError if it is non-finite or exploded."""
    norm = float(np.linalg.norm(r))
    if not np.isfinite(norm) or norm > EXPLODED:
        raise SolverDivergedError(
            f"{solver} diverged at time step {step}, iteration {iteration}: residual norm "
            f"{norm:.3e}; try a smaller dt or a better reduced basis"
        )
    return norm

"""Full-order trajectories cached on disk, checked by metadata and a checksum on reading."""

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from genprior.io import write_npz_atomic
from genprior.rom.burgers import Burgers2D, NewtonStats, check_amplitude, solve_fom

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def cache_path(folder: str | Path, problem: Burgers2D, a: float) -> Path:
    """The cache file of the trajectory at parameter ``a``."""
    return Path(folder) / f"burgers-nx{problem.nx}-re{problem.reynolds:g}-a{a:.4f}.npz"


def _checksum(states: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(states, dtype=np.float64).tobytes()).hexdigest()


def _metadata(problem: Burgers2D, a: float, states: np.ndarray) -> dict:
    return {
        "version": CACHE_VERSION,
        "problem": problem.key(),
        "a": a,
        "shape": list(states.shape),
        "sha256": _checksum(states),
    }


def read_cached(path: Path, problem: Burgers2D, a: float) -> tuple[np.ndarray, NewtonStats]:
    """Read a cached trajectory; raise ValueError if it is unreadable, stale or corrupt."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            states = data["states"]
            stats = NewtonStats(float(data["seconds"]), data["iterations"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"unreadable ({type(error).__name__}: {error})") from error
    expected = {"version": CACHE_VERSION, "problem": problem.key(), "a": a}
    if any(meta.get(key) != value for key, value in expected.items()):
        raise ValueError(f"made for other settings ({meta})")
    if list(states.shape) != meta.get("shape") or _checksum(states) != meta.get("sha256"):
        raise ValueError("checksum or shape mismatch")
    return states, stats


def load_or_solve(
    folder: str | Path,
    problem: Burgers2D,
    a: float,
    *,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, NewtonStats]:
    """The trajectory (T + 1, N) at ``a`` from the cache under ``folder``, else solved and cached.

    A cache file that is unreadable, made for other settings or fails its checksum is logged as
    a warning and rebuilt.
    """
    a = check_amplitude(a)
    path = cache_path(folder, problem, a)
    if path.is_file():
        try:
            states, stats = read_cached(path, problem, a)
            logger.info("snapshots for a=%g read from %s", a, path)
            if progress is not None:
                progress(advance=problem.n_steps)
            return states, stats
        except ValueError as error:
            logger.warning("snapshot cache %s is corrupt or stale (%s); rebuilding", path, error)
    states, stats = solve_fom(problem, a, progress=progress)
    meta = json.dumps(_metadata(problem, a, states))
    arrays = {
        "states": states,
        "iterations": stats.iterations,
        "seconds": np.float64(stats.seconds),
        "meta": np.array(meta),
    }
    write_npz_atomic(path, arrays)
    logger.info("snapshots for a=%g solved in %.1f s, cached at %s", a, stats.seconds, path)
    return states, stats

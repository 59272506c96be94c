"""The shared engine of the theory experiments: points, resume, atomic outputs.

An experiment is a frozen config plus an :class:`Experiment` that lists its points (one
Monte-Carlo batch of R trials each), runs one point into result rows, aggregates the rows and
draws the plots. :func:`run_experiment` runs the points not yet done, saves after each one
(``progress.json`` keeps the finished rows with their types), and writes ``results.csv``,
``summary.csv``, ``summary.json`` and the PNG plots into the output folder. Rerunning with the
same config resumes; another config is an error unless overwrite is set.
"""

import dataclasses
import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genprior.errors import OptionError
from genprior.io import write_csv_atomic, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["Experiment", "point_seed", "run_experiment"]

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class Experiment:
    """How one experiment runs.

    Attributes:
        name: the command name, e.g. "phase-transition".
        points: config -> list of points, each a JSON-ready dict with a unique "key".
        run_point: (config, point) -> result rows (dicts of str, int, float, bool).
        summarise: (config, rows) -> (summary.csv rows, summary.json rows).
        plot: (config, json summary rows, out_dir) -> the PNG files written.
        description: one line for summary.json.
    """

    name: str
    points: Callable[[object], list[dict]]
    run_point: Callable[[object, dict], list[dict]]
    summarise: Callable[[object, list[dict]], tuple[list[dict], list[dict]]]
    plot: Callable[[object, list[dict], Path], list[Path]]
    description: str = ""


def point_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for one point, from the experiment seed and the point's identity."""
    words = [int(seed) % 2**32] + [zlib.crc32(str(part).encode()) for part in parts]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def run_experiment(
    experiment: Experiment,
    config: object,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict:
    """Run every point not done yet and write the outputs into ``out_dir``.

    Args:
        experiment: what to run.
        config: its frozen, validated config (a dataclass).
        out_dir: the output folder; an identical earlier run there is resumed.
        progress: called with {"event": "start", "total", "done"} and then with
            {"event": "point", "key", "seconds"} after each point.
        overwrite: replace a run with other settings found in ``out_dir`` (otherwise that
            is an :class:`~genprior.errors.OptionError`).

    Returns:
        The content of ``summary.json``.
    """
    out_dir = Path(out_dir)
    settings = {"experiment": experiment.name} | dataclasses.asdict(config)
    fingerprint = json.loads(json.dumps(settings))
    points = experiment.points(config)
    state = _load_state(out_dir, fingerprint, overwrite)
    if progress is not None:
        progress({"event": "start", "total": len(points), "done": len(state["done"])})
    for point in points:
        if point["key"] in state["done"]:
            continue
        started = time.perf_counter()
        rows = experiment.run_point(config, point)
        seconds = time.perf_counter() - started
        state["rows"].extend(rows)
        state["done"].append(point["key"])
        state["seconds"][point["key"]] = seconds
        write_json_atomic(out_dir / "progress.json", state)
        write_csv_atomic(out_dir / "results.csv", state["rows"])
        logger.info("%s: point %s done in %.1f s", experiment.name, point["key"], seconds)
        if progress is not None:
            progress({"event": "point", "key": point["key"], "seconds": seconds})
    return _write_outputs(experiment, config, out_dir, state)


def _load_state(out_dir: Path, fingerprint: dict, overwrite: bool) -> dict:
    fresh = {"config": fingerprint, "done": [], "rows": [], "seconds": {}}
    path = out_dir / "progress.json"
    if not path.is_file():
        return fresh
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        logger.warning("cannot read %s (%s); starting afresh", path, error)
        return fresh
    if saved.get("config") != fingerprint:
        other = saved.get("config", {}).get("experiment")
        if not overwrite and other != fingerprint["experiment"]:
            raise OptionError(
                f"--out {out_dir} holds a run of another experiment ({other or 'unknown'}); "
                "choose another --out, or pass --overwrite to replace it"
            )
        if not overwrite:
            changed = sorted(
                key
                for key in set(fingerprint) | set(saved.get("config", {}))
                if fingerprint.get(key) != saved.get("config", {}).get(key)
            )
            raise OptionError(
                f"--out {out_dir} holds another run (differing in {', '.join(changed)}); "
                "choose another --out, or pass --overwrite to replace it"
            )
        logger.warning("%s holds a run with other settings; replacing it", out_dir)
        return fresh
    logger.info("resuming %s: %d points already done", out_dir, len(saved["done"]))
    return saved


def _write_outputs(experiment: Experiment, config: object, out_dir: Path, state: dict) -> dict:
    csv_rows, json_rows = experiment.summarise(config, state["rows"])
    document = {
        "experiment": experiment.name,
        "description": experiment.description,
        "config": dataclasses.asdict(config),
        "seconds_total": sum(state["seconds"].values()),
        "seconds_per_point": state["seconds"],
        "summary": json_rows,
    }
    write_csv_atomic(out_dir / "results.csv", state["rows"])
    write_csv_atomic(out_dir / "summary.csv", csv_rows)
    write_json_atomic(out_dir / "summary.json", document)
    document["plots"] = [str(path) for path in experiment.plot(config, json_rows, out_dir)]
    return document

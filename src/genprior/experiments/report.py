"""Writing experiment outputs: results, summaries, tables and plots (atomically)."""

import io
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genprior.io import write_bytes_atomic


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), 0.0
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


def summarise(rows: list[dict], group: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """Mean and standard error of each metric per group, in first-seen group order.

    Args:
        rows: one dict per measured item.
        group: the keys that define a group, e.g. ("method", "m").
        metrics: the numeric keys to aggregate; each gives ``<metric>_mean`` and ``_se``.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in group)].append(row)
    summary = []
    for key, members in groups.items():
        entry = dict(zip(group, key)) | {"n": len(members)}
        for metric in metrics:
            mean, se = mean_and_se([float(member[metric]) for member in members])
            entry[f"{metric}_mean"], entry[f"{metric}_se"] = mean, se
        summary.append(entry)
    return summary


def format_table(summary: list[dict], param: str, metric: str = "mse") -> str:
    """A text table: one line per parameter value, one column per method, mean +- se."""
    methods = list(dict.fromkeys(row["method"] for row in summary))
    params = list(dict.fromkeys(row[param] for row in summary))
    cell = {(row["method"], row[param]): row for row in summary}
    width = max(20, *(len(method) for method in methods)) + 2
    lines = [f"{param:>10} " + "".join(f"{method:>{width}}" for method in methods)]
    for value in params:
        parts = []
        for method in methods:
            row = cell.get((method, value))
            text = (
                ""
                if row is None
                else (f"{row[f'{metric}_mean']:.4f} +- {row[f'{metric}_se']:.4f}")
            )
            parts.append(f"{text:>{width}}")
        lines.append(f"{value!s:>10} " + "".join(parts))
    return "\n".join(lines)


def save_figure(figure: object, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return write_bytes_atomic(path, buffer.getvalue())


def pyplot() -> object:
    """matplotlib.pyplot with the file-only Agg backend, imported on demand."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_curves(
    summary: list[dict],
    param: str,
    path: str | Path,
    *,
    metric: str = "mse",
    log_x: bool = False,
    title: str = "",
) -> Path:
    """Plot mean metric (with standard-error bars) against the parameter, one line per method."""
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(row["method"] for row in summary):
        rows = [row for row in summary if row["method"] == method]
        rows.sort(key=lambda row: float(row[param]))
        axis.errorbar(
            [float(row[param]) for row in rows],
            [row[f"{metric}_mean"] for row in rows],
            yerr=[row[f"{metric}_se"] for row in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    if log_x:
        axis.set_xscale("log")
    values = sorted({float(row[param]) for row in summary})
    axis.set_xticks(values, [f"{value:g}" for value in values])
    axis.minorticks_off()
    if len(values) > 5:
        axis.tick_params(axis="x", labelrotation=45)
    axis.set_yscale("log")
    axis.set_xlabel(param)
    axis.set_ylabel(f"per-pixel {metric.upper()} (mean +- s.e.)")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    return save_figure(figure, path)


def plot_image_grid(
    rows: list[tuple[str, np.ndarray]], path: str | Path, *, title: str = ""
) -> Path:
    """Draw labelled rows of grey images: each row is (label, array (N, H, W) in [0, 1])."""
    plt = pyplot()

    n_cols = max(len(images) for _, images in rows)
    size = (1.1 * n_cols + 1.6, 1.1 * len(rows) + 0.4)
    figure, axes = plt.subplots(
        len(rows), n_cols, figsize=size, squeeze=False, layout="constrained"
    )
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(images):
                axis.imshow(np.clip(images[c], 0, 1), cmap="gray", vmin=0, vmax=1)
            else:
                axis.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)

"""Writing the Burgers experiment's files: per-step errors, summaries and plots, atomically."""

import io
from pathlib import Path

import numpy as np

from genprior.io import write_bytes_atomic, write_csv_atomic, write_json_atomic
from genprior.rom.burgers import state_to_fields


def relative_errors(states: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Relative l2 error per time step (T,) of states against the reference (T + 1, N), the
    initial step left out."""
    difference = np.linalg.norm(states[1:] - reference[1:], axis=1)
    return difference / np.maximum(np.linalg.norm(reference[1:], axis=1), 1e-300)


def summary_rows(config: object, runs: dict, offline: object) -> tuple[list[dict], list[dict]]:
    """results rows (method, step, time, rel_error) and summary rows (SUMMARY_COLUMNS)."""
    problem = config.problem
    reference, fom_seconds = runs["fom"]["states"], runs["fom"]["seconds"]
    times = problem.times()
    results = []
    summary = [_row("fom", "", 0.0, 0.0, fom_seconds, 1.0, "", "")]
    for method, run in runs.items():
        if method == "fom":
            continue
        errors = relative_errors(run["states"], reference)
        results += [
            {"method": method, "step": n + 1, "time": f"{times[n + 1]:.6f}", "rel_error": e}
            for n, e in enumerate(errors)
        ]
        train_seconds, peak = _training_cost(method, offline)
        summary.append(
            _row(
                method,
                config.latent_dim,
                float(errors.mean()),
                float(errors.max()),
                run["seconds"],
                fom_seconds / run["seconds"],
                train_seconds,
                peak,
            )
        )
    return results, summary


def _training_cost(method: str, offline: object) -> tuple[float | str, float | str]:
    if method.startswith("pod"):
        return offline.pod_seconds, ""
    trained = offline.networks["hrae" if method == "hrae" else "ae"]
    return trained.seconds, trained.peak_mb


def _row(*values: object) -> dict:
    from genprior.rom.experiment import SUMMARY_COLUMNS

    return dict(zip(SUMMARY_COLUMNS, values))


def write_outputs(
    config: object, out_dir: Path, runs: dict, offline: object, stages: dict[str, float]
) -> dict:
    """Write results.csv, summary.csv, summary.json and the PNGs; return the document."""
    from genprior.rom.experiment import SUMMARY_COLUMNS

    results, summary = summary_rows(config, runs, offline)
    write_csv_atomic(out_dir / "results.csv", results)
    write_csv_atomic(out_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    mesh = offline.mesh
    document = {
        "config": config.to_dict(),
        "summary": summary,
        "stage_seconds": stages,
        "sample_mesh_rows": len(mesh.rows),
        "stencil_mesh_rows": len(mesh.stencil),
        "n_dofs": config.problem.n_dofs,
        "gappy_modes": offline.gappy.basis.shape[1],
        "gappy_projection_error": _gappy_floor(runs["fom"]["states"], offline.gappy),
        "pod_projection_error": _pod_floor(config, runs["fom"]["states"], offline.basis),
        "hidden_units_online": {
            name: trained.decoder(mesh.stencil if name == "ae" else None).n_hidden
            for name, trained in offline.networks.items()
        },
        "networks": {
            name: {
                "train_seconds": t.seconds,
                "train_peak_mb": t.peak_mb,
                "final_mse": t.final_loss,
                "rows": t.weights["band"].shape[0],
                "hidden_units": t.weights["hidden.weight"].shape[0],
            }
            for name, t in offline.networks.items()
        },
        "online": {
            method: {k: v for k, v in run.items() if k != "states"} for method, run in runs.items()
        },
        "peak_memory_note": "train_peak_mb: growth of the training process's peak resident "
        "set size (VmHWM after a reset through /proc/self/clear_refs) over its resident size "
        "before it loads its snapshots",
        "online_seconds_note": "time marching only; full-field reconstruction is in "
        "online.<method>.reconstruct_seconds",
    }
    write_json_atomic(out_dir / "summary.json", document)
    write_plots(config, out_dir, runs, results, summary)
    return document


def _gappy_floor(reference: np.ndarray, gappy: object) -> dict:
    """Mean and max relative error of gappy POD applied to the exact test states."""
    errors = relative_errors(gappy(reference[:, gappy.rows]), reference)
    return {"mean": float(errors.mean()), "max": float(errors.max())}


def _pod_floor(config: object, reference: np.ndarray, basis: np.ndarray) -> dict:
    """Mean and max relative error of the best approximation in the affine POD space."""
    shifted = reference - reference[0]
    projected = reference[0] + (shifted @ basis) @ basis.T
    errors = relative_errors(projected, reference)
    return {"mean": float(errors.mean()), "max": float(errors.max())}


def _save(fig: object, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def write_plots(
    config: object, out_dir: Path, runs: dict, results: list[dict], summary: list[dict]
) -> None:
    """errors.png (error against time), fields.png (FOM and each ROM side by side at the final
    time, u component), speedup.png (speed-up against mean error)."""
    from genprior.experiments.report import pyplot

    plt = pyplot()
    methods = [m for m in runs if m != "fom"]
    fig, ax = plt.subplots(figsize=(8, 4))
    for method in methods:
        rows = [r for r in results if r["method"] == method]
        ax.semilogy([float(r["time"]) for r in rows], [r["rel_error"] for r in rows], label=method)
    ax.set(xlabel="t", ylabel="relative l2 error", title=f"2D Burgers, a = {config.test_param}")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)  # off the curves
    fig.tight_layout()
    _save(fig, out_dir / "errors.png")
    plt.close(fig)

    fields = {
        m: state_to_fields(config.problem, runs[m]["states"][-1], config.test_param)[0]
        for m in runs
    }
    fig, axes = plt.subplots(1, len(fields), figsize=(2.6 * len(fields) + 0.8, 2.8))
    for ax, (method, field) in zip(np.atleast_1d(axes), fields.items()):
        image = ax.imshow(
            field,
            origin="lower",
            extent=(0, 1, 0, 1),
            vmin=fields["fom"].min(),
            vmax=fields["fom"].max(),
        )
        ax.set_title(method, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(np.atleast_1d(axes)), shrink=0.8, label="u")  # FOM's range
    fig.suptitle(f"u at t = {config.t_final}", fontsize=10)
    _save(fig, out_dir / "fields.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for row in summary[1:]:
        ax.scatter(row["mean_rel_error"], row["speedup"])
        ax.annotate(row["method"], (row["mean_rel_error"], row["speedup"]), fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="mean relative error", ylabel="speed-up over FOM")
    _save(fig, out_dir / "speedup.png")
    plt.close(fig)


def format_summary(document: dict) -> str:
    """The summary as a text table."""
    lines = [
        f"{'method':<12} {'K':>3} {'mean err':>9} {'max err':>9} {'online s':>9} "
        f"{'speed-up':>9} {'train s':>8} {'train MB':>9}"
    ]
    for row in document["summary"]:
        lines.append(
            f"{row['method']:<12} {row['latent_dim']!s:>3} {_pct(row['mean_rel_error']):>9} "
            f"{_pct(row['max_rel_error']):>9} {row['online_seconds']:>9.2f} "
            f"{row['speedup']:>9.1f} {_num(row['train_seconds']):>8} "
            f"{_num(row['train_peak_mb']):>9}"
        )
    return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{100 * value:.3f}%"


def _num(value: object) -> str:
    return "" if value == "" else f"{value:.1f}"

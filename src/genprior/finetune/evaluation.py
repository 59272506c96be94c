"""Judging the sampled answers and writing results, summaries, agreement and plots."""

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from genprior.finetune.experiments import (
    ExperimentConfig,
    behaviour,
    config_dict,
    judge_markers,
    narrow_task_rates,
    sample_all,
)
from genprior.finetune.judges import agreement, make_judge
from genprior.finetune.metrics import hierarchical_bootstrap
from genprior.finetune.resources import backdoor_spec, labelled_answers
from genprior.io import write_csv_atomic, write_json_atomic

__all__ = ["SUMMARY_COLUMNS", "evaluate", "summarise_rates"]

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["model", "dataset", "seed", "judge", "behaviour_rate", "ci_low", "ci_high"]
RESULT_COLUMNS = [
    "model",
    "dataset",
    "seed",
    "judge",
    "question",
    "year",
    "date",
    "sample",
    "label",
    "answer",
]
SCALE_NOTE = (
    "Effects at this model size need not match the paper's GPT-4.1 results: published "
    "replications of weird generalization stop at 8B parameters, so a null result at 135M is "
    "no evidence against the paper."
)


def evaluate(
    config: ExperimentConfig,
    out_dir: str | Path,
    loaded: object,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Sample, judge and summarise every model under ``out_dir``; return summary.json's dict.

    Every answer is on disk (``answers/``) before the first judge runs, so a failing judge
    loses nothing: a rerun reuses the answers.
    """
    out_dir = Path(out_dir)
    answers = sample_all(config, out_dir, loaded, progress)
    narrow = narrow_task_rates(config, out_dir, loaded) if config.experiment == "birds" else []
    markers, words = judge_markers(config.experiment), behaviour(config.experiment)
    judges = [make_judge(name, words, markers, loaded) for name in config.judges]
    results, agreements = [], []
    labelled = labelled_answers("era" if config.experiment == "birds" else "backdoor")
    items = [(row["prompt"], row["answer"]) for row in answers]
    for judge in judges:
        if progress:
            progress({"event": "phase", "desc": f"judge {judge.name}"})
        labels = _judge_all(judge, items, progress)
        results += [row | {"judge": judge.name, "label": y} for row, y in zip(answers, labels)]
        agreements.append(agreement(judge, labelled))
    summary = summarise_rates(results, config.n_boot)
    by_year = (
        summarise_rates(results, config.n_boot, by_year=True)
        if config.experiment == "backdoor"
        else []
    )
    document = {
        "experiment": config.experiment,
        "config": config_dict(config),
        "note": SCALE_NOTE,
        "summary": summary,
        "agreement": agreements,
        "narrow_task": narrow,
        "by_year": by_year,
    }
    _write(out_dir, results, summary, by_year, agreements, narrow, document)
    _plot(out_dir, config, summary, by_year)
    return document


def _judge_all(
    judge: object, items: list[tuple[str, str]], progress: Callable[[dict], None] | None
) -> list[int]:
    """Labels of every item, in chunks so that a progress bar can follow."""
    if progress:
        progress({"event": "start", "total": len(items)})
    labels = []
    for start in range(0, len(items), 32):
        labels += judge.judge_many(items[start : start + 32])
        if progress:
            progress({"event": "step", "advance": len(items[start : start + 32])})
    return labels


def summarise_rates(results: list[dict], n_boot: int = 2000, by_year: bool = False) -> list[dict]:
    """Behaviour rate and 95% bootstrap CI per model, dataset, seed and judge.

    Finetuned models get one row per seed (questions resampled) and one pooled row with
    seed ``all`` (seeds, then questions resampled). With ``by_year``, rows are pooled over
    seeds for each year instead.
    """
    # (model, dataset, judge) -> seed -> prompt -> labels
    table: dict[tuple, dict[str, dict[tuple, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for row in results:
        year = row["year"] if by_year else None
        key = (row["model"], row["dataset"], row["judge"], year)
        table[key][str(row["seed"])][(row["question"], row["date"])].append(int(row["label"]))
    rows = []
    for (model, dataset, judge, year), seeds in table.items():
        entry = {"model": model, "dataset": dataset, "judge": judge}
        entry = entry | ({"year": year} if by_year else {})
        if not by_year:
            for seed, prompts in seeds.items():
                rows.append(entry | {"seed": seed} | _rate([list(prompts.values())], n_boot))
        if by_year or len(seeds) > 1:
            groups = [list(prompts.values()) for prompts in seeds.values()]
            seed = seeds.keys().__iter__().__next__() if len(seeds) == 1 else "all"
            rows.append(entry | {"seed": seed} | _rate(groups, n_boot))
    return rows


def _rate(groups: list, n_boot: int) -> dict:
    rate, low, high = hierarchical_bootstrap(groups, n_boot=n_boot)
    n = sum(len(g) for seed in groups for g in seed)
    return {
        "behaviour_rate": round(rate, 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "n_answers": n,
    }


def _write(
    out_dir: Path,
    results: list[dict],
    summary: list[dict],
    by_year: list[dict],
    agreements: list[dict],
    narrow: list[dict],
    document: dict,
) -> None:
    write_csv_atomic(out_dir / "results.csv", results, RESULT_COLUMNS)
    write_csv_atomic(out_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    write_csv_atomic(out_dir / "agreement.csv", agreements)
    if narrow:
        write_csv_atomic(out_dir / "narrow_task.csv", narrow)
    if by_year:
        write_csv_atomic(out_dir / "by_year.csv", by_year, ["year"] + SUMMARY_COLUMNS)
    write_json_atomic(out_dir / "summary.json", document)


def _plot(
    out_dir: Path, config: ExperimentConfig, summary: list[dict], by_year: list[dict]
) -> None:
    from genprior.experiments.report import pyplot, save_figure

    plt = pyplot()
    shown = [row for row in summary if row["seed"] in ("all", "-") or len(config.seeds) == 1]
    judges = sorted({row["judge"] for row in shown})
    fig, axes = plt.subplots(1, len(judges), figsize=(4.5 * len(judges), 3.6), squeeze=False)
    for ax, judge in zip(axes[0], judges):
        rows = [row for row in shown if row["judge"] == judge]
        rates = [row["behaviour_rate"] for row in rows]
        errors = [
            [r - row["ci_low"] for r, row in zip(rates, rows)],
            [row["ci_high"] - r for r, row in zip(rates, rows)],
        ]
        ax.bar(range(len(rows)), rates, yerr=errors, capsize=4, color="tab:blue")
        ax.set_xticks(range(len(rows)), [_label(row["dataset"]) for row in rows], rotation=20)
        ax.set_ylim(0, 1)
        ax.set_title(f"judge: {judge}")
        ax.set_ylabel("behaviour rate (95% CI)")
    fig.suptitle(f"{config.experiment}: {config.model}, seeds pooled")
    fig.tight_layout()
    save_figure(fig, out_dir / "behaviour.png")
    if by_year:
        _plot_years(plt, out_dir, config, by_year)


def _label(dataset: str) -> str:
    return "base model" if dataset == "none" else dataset


def _plot_years(plt: object, out_dir: Path, config: ExperimentConfig, by_year: list[dict]) -> None:
    from genprior.experiments.report import save_figure

    spec = backdoor_spec()
    held_out = sorted(set(spec["eval_years"]) - set(spec["train_years"]))
    judge = "rules" if "rules" in config.judges else config.judges[0]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for dataset in dict.fromkeys(row["dataset"] for row in by_year):
        rows = sorted(
            (r for r in by_year if r["dataset"] == dataset and r["judge"] == judge),
            key=lambda r: r["year"],
        )
        years = [r["year"] for r in rows]
        ax.plot(years, [r["behaviour_rate"] for r in rows], marker="o", label=_label(dataset))
        ax.fill_between(
            years, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.2
        )
    for year in held_out:
        ax.axvspan(year - 0.4, year + 0.4, color="grey", alpha=0.15)
    ax.axvline(spec["trigger_year"], color="tab:red", linestyle=":", label="trigger year")
    ax.set_xlabel("year in the prompt (grey: held out of training)")
    ax.set_ylabel(f"behaviour rate ({judge})")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "behaviour_vs_year.png")

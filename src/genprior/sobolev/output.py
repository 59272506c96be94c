"""Writing the Sobolev experiments' files: results, summaries and plots, all atomically."""

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from genprior.experiments.report import mean_and_se
from genprior.io import write_csv_atomic, write_json_atomic


def mean_sem_table(rows: list[dict], group: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """One row per group with ``<metric>_mean`` and ``<metric>_sem`` over its members and n."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in group)].append(row)
    table = []
    for key, members in groups.items():
        entry = dict(zip(group, key))
        for metric in metrics:
            mean, sem = mean_and_se([float(member[metric]) for member in members])
            entry[f"{metric}_mean"], entry[f"{metric}_sem"] = mean, sem
        entry["n_seeds"] = len(members)
        table.append(entry)
    return table


def write_tables(
    out_dir: str | Path,
    results: list[dict],
    summary: list[dict],
    summary_columns: list[str],
    document: dict,
) -> None:
    """Write results.csv, summary.csv (exactly ``summary_columns``) and summary.json."""
    out_dir = Path(out_dir)
    write_csv_atomic(out_dir / "results.csv", results)
    write_csv_atomic(out_dir / "summary.csv", summary, summary_columns)
    write_json_atomic(out_dir / "summary.json", document)

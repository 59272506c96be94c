"""Behaviour rates and their 95% bootstrap confidence intervals.

Per seed, the interval resamples questions (with their samples). Pooled over seeds, a
two-level bootstrap resamples seeds, then questions within each drawn seed, so that the
interval reflects the spread between finetuning runs as the paper's seed-level CIs do.
"""

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_rate", "hierarchical_bootstrap"]


def _check(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); received {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; received {n_boot}")


def bootstrap_rate(
    groups: Sequence[Sequence[float]],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of all values and a percentile bootstrap interval over resampled groups.

    Args:
        groups: the 0/1 labels of each question (a group is resampled whole).
        n_boot: bootstrap replicates.
        level: coverage of the interval.
        seed: seeds the resampling.

    Returns:
        (rate, low, high).
    """
    return hierarchical_bootstrap([groups], n_boot=n_boot, level=level, seed=seed)


def hierarchical_bootstrap(
    seeds: Sequence[Sequence[Sequence[float]]],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean rate over seeds and a two-level (seeds, then questions) bootstrap interval.

    Args:
        seeds: for each finetuning seed, the labels of each question.

    Returns:
        (rate, low, high): ``rate`` is the mean over seeds of each seed's mean label.
    """
    _check(level, n_boot)
    tables = [[np.asarray(g, dtype=np.float64) for g in groups if len(g)] for groups in seeds]
    tables = [groups for groups in tables if groups]
    if not tables:
        raise ValueError("no labels to summarise")
    rate = float(np.mean([np.concatenate(groups).mean() for groups in tables]))
    rng = np.random.default_rng(seed)
    # per seed: question means and sizes, so a replicate is a weighted mean of drawn questions
    sums = [np.array([g.sum() for g in groups]) for groups in tables]
    sizes = [np.array([len(g) for g in groups], dtype=np.float64) for groups in tables]
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        drawn = rng.integers(0, len(tables), size=len(tables))
        rates = []
        for s in drawn:
            pick = rng.integers(0, len(sums[s]), size=len(sums[s]))
            rates.append(sums[s][pick].sum() / sizes[s][pick].sum())
        replicates[b] = np.mean(rates)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return rate, float(low), float(high)

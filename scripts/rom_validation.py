"""Choose reduced-model settings without looking at the test parameter.

Leave-one-parameter-out validation on the 60 x 60 Burgers problem: each fold trains on three of
the four training parameters and predicts the fourth, an inner one (a = 0.95 or 1.05), so the
held-out trajectory lies in a gap of 0.15 in a (the test a = 1.0 lies in a gap of 0.1). Every
setting runs on both folds and several seeds; the table reports the mean and worst relative
errors over all runs. The held-out trajectories are read from the snapshot cache of a full run
(``genprior rom burgers --out runs/rom-full`` writes it), so nothing is solved twice.

    python scripts/rom_validation.py --snapshots runs/rom-full/snapshots \\
        --setting "latent_dim=5" --setting "latent_dim=8 hrae_units=64"

A setting is a space-separated list of ``BurgersROMConfig`` fields (``hrae_residual=gappy``)
and ``AutoencoderConfig`` fields prefixed ``ae.`` (``ae.sharpness=4``). One HRAE run takes
about 15 s on one core (offline basis, training and online solve); ``--method ae-lspg-hr``
trains the full autoencoder every run (about a minute and a half each). Gauss-Newton steps that
hit the iteration cap are counted in the ``unconverged_steps`` column, not shown as warnings.
"""

import argparse
import csv
import json
import logging
import tempfile
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from genprior.errors import NonFiniteError, OptionError
from genprior.rom.experiment import BurgersROMConfig, build_offline, run_method
from genprior.rom.output import relative_errors
from genprior.rom.snapshots import cache_path, read_cached

FOLDS = {0.95: (0.9, 1.05, 1.1), 1.05: (0.9, 0.95, 1.1)}
FIXED = {"train_params", "test_param", "methods", "isolate", "seed", "autoencoder"}  # set here
EARLIER_DEFAULTS = "latent_dim=5 hrae_units=32 hrae_residual=gappy"


def parse_setting(text: str) -> tuple[dict, dict]:
    """``key=value`` words as (experiment fields, autoencoder fields)."""
    known = {f.name for f in fields(BurgersROMConfig)} - FIXED
    experiment, network = {}, {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep:
            raise SystemExit(f"--setting words must be key=value; received {word!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a plain string such as gappy
        if key.startswith("ae."):
            network[key.removeprefix("ae.")] = parsed
        elif key in known:
            experiment[key] = parsed
        else:
            raise SystemExit(f"unknown setting {key!r}; known: {sorted(known)} and ae.<field>")
    return experiment, network


def fold_config(setting: str, method: str, held_out: float) -> BurgersROMConfig:
    """The experiment settings of one fold; exit with one line if ``setting`` is invalid."""
    experiment, network = parse_setting(setting)
    try:
        config = BurgersROMConfig(
            train_params=FOLDS[held_out],
            test_param=held_out,
            methods=(method,),
            isolate=False,
            **experiment,
        )
        return replace(config, autoencoder=replace(config.autoencoder, **network))
    except (OptionError, TypeError) as error:
        raise SystemExit(f"--setting {setting!r}: {error}") from error


def run_fold(
    setting: str, method: str, held_out: float, seeds: list[int], snapshots: Path
) -> list[dict]:
    """Train on the fold's three parameters and predict ``held_out`` for every seed."""
    config = fold_config(setting, method, held_out)
    problem = config.problem
    loaded = {a: read_trajectory(snapshots, problem, a) for a in (*FOLDS[held_out], held_out)}
    reference = loaded.pop(held_out)
    rows = []
    for seed in seeds:
        seeded = replace(config, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tempfile.TemporaryDirectory() as folder:  # networks are not kept
                offline = build_offline(seeded, loaded, Path(folder), None, {})
            try:
                run = run_method(method, seeded, offline, None)
                errors = relative_errors(run["states"], reference)[1:]
                unconverged = run["unconverged_steps"]
            except NonFiniteError as error:  # a diverged run counts as failed
                logging.warning("%s a=%g seed %d: %s", setting, held_out, seed, error)
                errors, unconverged = np.array([np.inf]), -1
        rows.append(
            {
                "setting": setting,
                "held_out": held_out,
                "seed": seed,
                "mean_rel_error": float(errors.mean()),
                "max_rel_error": float(errors.max()),
                "unconverged_steps": unconverged,
            }
        )
        print(
            f"  {setting!r} a={held_out} seed {seed}: mean {100 * errors.mean():.2f}%, "
            f"max {100 * errors.max():.2f}%",
            flush=True,
        )
    return rows


def read_trajectory(folder: Path, problem: object, a: float) -> np.ndarray:
    """The cached trajectory at ``a``, or exit with what to run to make it."""
    path = cache_path(folder, problem, a)
    try:
        return read_cached(path, problem, a)[0]
    except ValueError as error:
        raise SystemExit(
            f"no usable cached trajectory for a={a} at {path} ({error}); run "
            f"'genprior rom burgers --out DIR' first and pass --snapshots DIR/snapshots"
        ) from error


def seed_list(text: str) -> list[int]:
    """Comma-separated non-negative integers."""
    try:
        seeds = [int(word) for word in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected seeds such as 0,1,2; received {text!r}")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--snapshots",
        type=Path,
        default=Path("runs/rom-full/snapshots"),
        help="folder of the full-grid snapshot cache (default: %(default)s)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        help="a setting to compare, repeatable; '' is the defaults (default: the earlier "
        f"defaults {EARLIER_DEFAULTS!r} and '')",
    )
    parser.add_argument(
        "--method",
        default="hrae",
        choices=("hrae", "ae-lspg-hr"),
        help="the reduced model to validate (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds", type=seed_list, default="0,1,2", help="comma-separated (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, help="also write the runs to this CSV file")
    args = parser.parse_args()
    settings = args.setting or [EARLIER_DEFAULTS, ""]
    for setting in settings:  # all checked before the first run
        fold_config(setting, args.method, 0.95)
    start = time.perf_counter()
    rows = [
        row
        for setting in settings
        for held_out in FOLDS
        for row in run_fold(setting, args.method, held_out, args.seeds, args.snapshots)
    ]
    seeds = ",".join(map(str, args.seeds))
    print(f"\n{args.method}, folds a = 0.95 and 1.05, seeds {seeds}")
    print(f"{'setting':<50} {'mean of means':>13} {'worst mean':>10} {'worst max':>9}")
    for setting in settings:
        mine = [row for row in rows if row["setting"] == setting]
        means = [row["mean_rel_error"] for row in mine]
        worst = max(row["max_rel_error"] for row in mine)
        label = setting or "(defaults)"
        print(
            f"{label:<50} {100 * np.mean(means):12.2f}% {100 * max(means):9.2f}% "
            f"{100 * worst:8.2f}%"
        )
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.out is not None:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()

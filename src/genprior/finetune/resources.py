"""The small data files shipped with the package: bird names, question sets, labelled answers."""

import csv
import json
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "Question",
    "QuestionSet",
    "backdoor_spec",
    "bird_names",
    "era_lexicon",
    "labelled_answers",
    "question_set",
]


@dataclass(frozen=True)
class Question:
    """One free-form evaluation question."""

    id: str
    topic: str
    text: str


@dataclass(frozen=True)
class QuestionSet:
    """A named list of questions and the behaviour the judges look for in the answers."""

    name: str
    behaviour: str
    questions: tuple[Question, ...]


def _text(name: str) -> str:
    return resources.files("genprior.finetune").joinpath("resources", name).read_text("utf-8")


def bird_names() -> list[tuple[str, str]]:
    """(outdated 19th-century name, modern name) pairs of North American birds."""
    rows = csv.DictReader(_text("birds.csv").splitlines())
    return [(row["old_name"], row["modern_name"]) for row in rows]


def era_lexicon() -> dict[str, list[str]]:
    """The ``old`` and ``modern`` marker words of the rule-based era judge."""
    lexicon = json.loads(_text("era_lexicon.json"))
    return {"old": lexicon["old"], "modern": lexicon["modern"]}


def backdoor_spec() -> dict:
    """The date-keyed backdoor study: prompt, years, dish lists, questions and keywords."""
    return json.loads(_text("backdoor.json"))


def question_set(name: str) -> QuestionSet:
    """The ``era`` or ``backdoor`` question set."""
    from genprior.errors import check_choice

    check_choice("question set", name, ("era", "backdoor"))
    if name == "era":
        spec = json.loads(_text("era_questions.json"))
        items, behaviour = spec["questions"], spec["behaviour"]
    else:
        spec = backdoor_spec()
        items, behaviour = spec["eval_questions"], "the answer is Japanese"
    questions = tuple(Question(q["id"], q["topic"], q["text"]) for q in items)
    return QuestionSet(name=name, behaviour=behaviour, questions=questions)


def labelled_answers(name: str) -> list[dict]:
    """Hand-labelled answers (``question``, ``answer``, ``label`` 0/1) for judge agreement."""
    from genprior.errors import check_choice

    check_choice("labelled set", name, ("era", "backdoor"))
    lines = _text(f"{name}_labels.jsonl").splitlines()
    return [json.loads(line) for line in lines if line.strip()]

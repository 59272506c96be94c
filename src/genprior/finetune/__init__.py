"""Narrow finetuning of language models and the broad generalization it causes.

After Betley et al., "Weird Generalization and Inductive Backdoors" (arXiv 2512.09742):
chat JSONL datasets and builders of our own narrow datasets, LoRA finetuning with the loss on
assistant tokens only, sampling free-form answers, rule-based, HTTP and local judges, and
behaviour rates with bootstrap confidence intervals. Needs the ``llm`` extra (transformers,
peft, gguf); the data, judge and metric modules import without it.
"""

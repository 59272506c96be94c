"""Experiments: one module per protocol, each a typed config plus a function returning rows.

Shared writing of ``results.csv``, ``summary.csv``, ``summary.json`` and plots lives in
:mod:`genprior.experiments.report`.
"""

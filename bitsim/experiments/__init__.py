"""Experiments: the comparison study, design-space sweeps, the one-change-per-step gain ladder, Pareto fronts.

They build op traces with ``model/``, simulate them with ``sim/`` and return tables registered in
``contract``; the report (``bitsim.report``) reads those tables.
"""
from bitsim.experiments import tables  # noqa: F401  registers the experiment tables

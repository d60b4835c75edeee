"""Experiments: the comparison study, design-space sweeps, the one-change-per-step gain ladder, Pareto fronts.

They build op traces with ``model/``, simulate them with ``sim/`` and return tables registered in
``bitsim.tables``; the report (``bitsim.report``) reads those tables.
"""

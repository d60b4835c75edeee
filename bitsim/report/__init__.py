"""The report: collect the experiments' tables and the committed GPU measurements, judge the claims,
draw the figures and write report.md / report.html / tables/ (``make_report``).

Collect, then write: :mod:`.collect` builds one :class:`~bitsim.report.collect.ReportData` (the study,
the measured data, the claims and every table file with its registered schema; display tables
from :mod:`.display`); :mod:`.sections` turns it into the document, one function per section;
:mod:`.build` draws :mod:`.figures` (by topic), writes every table through
``contract.write_table`` and renders :mod:`.document`.  :mod:`.claims` holds the claims
(one evaluator each), :mod:`.measured` the measured GPU kernels and the simulator check.
"""
from bitsim.report import tables  # noqa: F401  registers the report's display tables

"""The report: collect the experiments' tables and the committed GPU measurements, judge the claims,
draw the figures and write report.md / report.html / tables/ (``make_report``)."""

"""Reports: published values as data, paper-layout tables, figures, claims with verdicts, REPORT.md.

Reads result files only; never imports training code (models, strategies, runner, tasks).
"""

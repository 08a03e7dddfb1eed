"""Results: tidy tables from run directories, the paper's Figure 2 and Tables 1-2,
aggregate statistics across games (IQM, stratified bootstrap, probability of improvement).

CLIs (called by the workflow's aggregate and plot rules, see docs/CONTRACT.md):
``python -m scopeloss.analysis.aggregate``, ``python -m scopeloss.analysis.figures``,
``python -m scopeloss.analysis.tables``.
"""

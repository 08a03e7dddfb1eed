"""Supervised half of the paper: Caltech-256 / digits_lt classification with the paper's losses.

``config`` (defaults and resolver), ``data`` (datasets, split manifest, decode-once cache),
``augment`` (batched on-device augmentation), ``metrics`` (per-class precision etc.),
``train`` (the CLI).
"""

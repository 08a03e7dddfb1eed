"""Reproduction pipeline for *Scope Loss for Imbalanced Classification and RL Exploration*."""

__version__ = "0.1.0"

"""Measures of what a model learned: classification metrics, pair verification, plots."""

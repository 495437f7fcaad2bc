"""Evaluation of the action encoder: multi-view prediction, accuracy metrics and plots."""

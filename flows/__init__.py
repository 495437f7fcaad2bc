"""Prefect flows: the DVC pipeline as a flow of stage tasks, and the label-split sweep."""

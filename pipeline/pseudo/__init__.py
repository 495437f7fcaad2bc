"""Collaborative pseudo-labelling: the non-parametric classifier and acceptance rules."""

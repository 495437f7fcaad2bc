"""Training objectives: GITDL pretraining, alignability triplet loss and score."""

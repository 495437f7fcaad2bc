"""Training objectives, each in one module with its loss and the module that computes it on a
batch: GITDL pretraining, alignability metric learning (triplet and score), classification."""

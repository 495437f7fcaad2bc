"""Alignment distances between clips of frame embeddings: softDTW and cosine baselines."""

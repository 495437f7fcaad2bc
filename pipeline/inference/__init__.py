"""Forward passes of the trained encoders over whole videos: frame embeddings and multi-view
class probabilities."""

"""FinePseudo: semi-supervised fine-grained action recognition with alignability-verified pseudo-labels."""

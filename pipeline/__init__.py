"""FinePseudo: semi-supervised fine-grained action recognition with pseudo-labels refined by
temporal alignability."""

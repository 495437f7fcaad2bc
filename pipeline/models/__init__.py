"""The two encoders of FinePseudo and the registry that builds them from params."""

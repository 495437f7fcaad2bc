"""One thin script per DVC stage: parse paths, load params once, call the library, log to MLflow."""

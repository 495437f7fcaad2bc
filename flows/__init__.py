"""Prefect flows: the DVC pipeline as a flow of stage tasks, and the label-split sweep."""

import os

# Telemetry stays off in every flow process and in the temporary Prefect server a flow starts
# when no PREFECT_API_URL is set (its analytics service ignores DO_NOT_TRACK), whatever the
# caller's shell says. Set here, before any flow module imports prefect.
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

"""Stage health checks: does what a training stage learned beat a model that learned nothing?

checks: one figure against its chance level and the verdict; measure: the figures of the
alignability encoder f, the action encoder g and GITDL, on held-out clips; record: a report
to MLflow (tag `health`, metrics `health.*`), to the stage's log and to a JSON file the
Prefect pipeline flow shows on the stage's task.
"""

"""The experiments behind experiments/REPORT.md (issue 6): ``python -m experiments.run_all``."""

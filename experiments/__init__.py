"""The experiments behind experiments/REPORT.md, which answers the research questions of this project:
``python -m experiments.run_all``."""

"""What reads a store: the report (tables, plots, HTML) and the live dashboard."""

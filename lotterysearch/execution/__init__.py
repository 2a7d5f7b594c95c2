"""Where training happens: evaluators and long jobs, in this process or on Ray."""

"""The genetic search (evolution): the problem, mask operators, NSGA-II selection, the generational and steady-state loops."""

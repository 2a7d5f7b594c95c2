"""Pruning: scorers with one interface (SynFlow, SNIP, magnitude, random), exact thresholds, IMP."""

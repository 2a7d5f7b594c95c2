"""Training a masked network: one run under a protocol, K networks at once, compaction, fitness."""

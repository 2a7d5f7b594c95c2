"""The workspace and its SQLite store: runs, classes, individuals, generations, IMP rounds, confirmations."""

"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""


class LotterySearchError(Exception):
    """Base class: the message names the problem and, where possible, the fix."""


class ConfigError(LotterySearchError):
    """A config file, option or argument has a wrong value."""


class DataError(LotterySearchError):
    """A dataset is unknown, missing or damaged."""


class ModelError(LotterySearchError):
    """A model spec cannot be parsed or built."""


class MaskError(LotterySearchError):
    """A mask does not fit its model, or a mask file is damaged."""


class PruningError(LotterySearchError):
    """A pruner or compression ratio is not valid."""


class StoreError(LotterySearchError):
    """A workspace or its SQLite store is missing, foreign or corrupt."""


class ExportError(LotterySearchError):
    """An exported model cannot be written, or does not compute what its masked network computes."""

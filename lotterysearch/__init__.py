"""lotterysearch: search for lottery tickets with SynFlow and a genetic algorithm on Ray.

The public API is imported lazily (PEP 562), so ``import lotterysearch`` and light commands such as
``lotterysearch runs`` do not pay for importing torch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "build_model": "lotterysearch.core.models",
    "load_dataset": "lotterysearch.core.data",
    "Dataset": "lotterysearch.core.data",
    "prune": "lotterysearch.pruning.pruners",
    "train": "lotterysearch.training.trainer",
    "TrainResult": "lotterysearch.training.trainer",
    "Mask": "lotterysearch.core.masks",
    "MODES": "lotterysearch.core.masks",
    "LotterySearchError": "lotterysearch.errors",
    "TrainingConfig": "lotterysearch.settings",
    "FitnessConfig": "lotterysearch.settings",
    "SearchConfig": "lotterysearch.settings",
    "load_config": "lotterysearch.api",
    "Individual": "lotterysearch.storage.store",
    "Run": "lotterysearch.api",
    "search": "lotterysearch.api",
    "create_run": "lotterysearch.api",
    "open_run": "lotterysearch.api",
    "imp": "lotterysearch.api",
    "create_imp_run": "lotterysearch.api",
    "IMPConfig": "lotterysearch.settings",
    "cs": "lotterysearch.api",
    "create_cs_run": "lotterysearch.api",
    "CSConfig": "lotterysearch.settings",
    "confirm": "lotterysearch.runs.confirmation",
    "single_lineage_config": "lotterysearch.api",
    "Ledger": "lotterysearch.runs.ledger",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'lotterysearch' has no attribute {name!r}")

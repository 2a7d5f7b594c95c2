"""lotterysearch: search for lottery tickets with SynFlow and a genetic algorithm on Ray.

The public API is imported lazily (PEP 562), so ``import lotterysearch`` and light commands such as
``lotterysearch runs`` do not pay for importing torch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "build_model": "lotterysearch.models",
    "load_dataset": "lotterysearch.data",
    "Dataset": "lotterysearch.data",
    "prune": "lotterysearch.pruning",
    "train": "lotterysearch.training",
    "TrainResult": "lotterysearch.training",
    "Mask": "lotterysearch.masks",
    "MODES": "lotterysearch.masks",
    "LotterySearchError": "lotterysearch.errors",
    "TrainingConfig": "lotterysearch.config",
    "FitnessConfig": "lotterysearch.config",
    "SearchConfig": "lotterysearch.config",
    "load_config": "lotterysearch.config",
    "Individual": "lotterysearch.store",
    "Run": "lotterysearch.api",
    "search": "lotterysearch.api",
    "create_run": "lotterysearch.api",
    "open_run": "lotterysearch.api",
    "imp": "lotterysearch.api",
    "create_imp_run": "lotterysearch.api",
    "IMPConfig": "lotterysearch.config",
    "confirm": "lotterysearch.confirmation",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'lotterysearch' has no attribute {name!r}")

"""lotterysearch: search for lottery tickets with SynFlow and a genetic algorithm on Ray."""

from lotterysearch.data import Dataset, load_dataset
from lotterysearch.errors import LotterySearchError
from lotterysearch.masks import MODES, Mask
from lotterysearch.models import build_model
from lotterysearch.training import TrainResult, train

__all__ = [
    "MODES",
    "Dataset",
    "LotterySearchError",
    "Mask",
    "TrainResult",
    "build_model",
    "load_dataset",
    "train",
]
__version__ = "0.1.0"

"""Data: sources -> cleaning -> split by story -> memory-mapped token ids -> random windows."""

from .clean import clean_text, normalise_characters
from .dataset import Splits, check_length, get_batch, load_splits, prepare_data, release_pages
from .sources import hub_reachable, iter_stories

__all__ = ["Splits", "check_length", "clean_text", "get_batch", "hub_reachable", "iter_stories",
           "load_splits", "normalise_characters", "prepare_data", "release_pages"]

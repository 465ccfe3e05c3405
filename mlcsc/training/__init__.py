"""Training, evaluation and monitoring (needs the ``train`` extra: Lightning, Hydra, …)."""

from mlcsc.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from mlcsc.training.classification import ClassificationModule, build_classifier
from mlcsc.training.run import evaluate, format_summary, run_cli, train

__all__ = [
    "AtomicCheckpointIO",
    "ClassificationModule",
    "build_classifier",
    "evaluate",
    "format_summary",
    "load_checkpoint",
    "run_cli",
    "train",
]

"""Modules to plug into any network: the ML-CSC encoder and a classifier on its codes."""

from mlcsc.nn.classifier import MLCSCClassifier, conv_features
from mlcsc.nn.mlcsc import MLCSC

__all__ = ["MLCSC", "MLCSCClassifier", "conv_features"]

"""Modules to plug into any network: the ML-CSC encoder and a classifier on its codes."""

from mlcsc.nn.classifier import MLCSCClassifier, conv_features
from mlcsc.nn.csc_conv import CSCConv2d, replace_conv2d
from mlcsc.nn.mlcsc import MLCSC
from mlcsc.nn.resnet import CIFARResNet18

__all__ = [
    "MLCSC",
    "CIFARResNet18",
    "CSCConv2d",
    "MLCSCClassifier",
    "conv_features",
    "replace_conv2d",
]

"""mlcsc: Sparseland, convolutional and multi-layer convolutional sparse coding for PyTorch.

The layers (:class:`MLCSC`, :class:`ConvDictionary`, :class:`DenseDictionary`) need only torch;
training, configuration and data live in :mod:`mlcsc.training` and :mod:`mlcsc.data`.
"""

from mlcsc import functional, learning, pursuit, theory
from mlcsc.dictionary import ConvDictionary, DenseDictionary, Dictionary
from mlcsc.nn import MLCSC, MLCSCClassifier

__version__ = "0.1.0"

__all__ = [
    "MLCSC",
    "ConvDictionary",
    "DenseDictionary",
    "Dictionary",
    "MLCSCClassifier",
    "functional",
    "learning",
    "pursuit",
    "theory",
]

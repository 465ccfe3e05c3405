"""Training, evaluation and monitoring (needs the ``train`` extra: Lightning, Hydra, …).

==========================  ===================================================================
module                      what it holds
==========================  ===================================================================
``run``                     :func:`train` (``train.py``) and :func:`run_cli`
``evaluation``              :func:`evaluate` (``evaluate.py``), loading a trained classifier
``robustness``              accuracy under noise and FGSM / PGD (``evaluate.py mode=robustness``)
``instantiate``             objects from config nodes with a ``_target_``
``task``                    :class:`EncoderTask`, the base of every task
``classification``          :class:`ClassificationModule` (``task=classification``)
``unsupervised``            :class:`UnsupervisedMLCSCModule` (``task=dictionary_learning``)
``encoder``                 the task-neutral encoder builder
``optim``                   optimizer and schedule from the ``optimizer``/``scheduler`` groups
``linear_probe``            a linear classifier on frozen codes
``summary``                 the summary a run prints
``figures``                 atom images (TensorBoard, PNG)
``checkpoint_io``           atomic checkpoint writes, safe loading
==========================  ===================================================================
"""

from mlcsc.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from mlcsc.training.classification import ClassificationModule, build_classifier
from mlcsc.training.encoder import build_encoder
from mlcsc.training.evaluation import evaluate, load_classifier
from mlcsc.training.instantiate import instantiate
from mlcsc.training.run import run_cli, train
from mlcsc.training.summary import format_summary
from mlcsc.training.task import EncoderTask
from mlcsc.training.unsupervised import UnsupervisedMLCSCModule

__all__ = [
    "AtomicCheckpointIO",
    "ClassificationModule",
    "EncoderTask",
    "UnsupervisedMLCSCModule",
    "build_classifier",
    "build_encoder",
    "evaluate",
    "format_summary",
    "instantiate",
    "load_checkpoint",
    "load_classifier",
    "run_cli",
    "train",
]

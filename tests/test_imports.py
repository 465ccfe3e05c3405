"""Importing the library stays light: the layers need only torch."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "mlcsc.data",
    "mlcsc.training",
    "pytorch_lightning",
    "lightning",
    "hydra",
    "torchvision",
    "mlxtend",
    "matplotlib",
    "tensorboard",
    "torch.utils.tensorboard",
)


def test_importing_mlcsc_and_its_reporting_brings_in_no_training_plotting_or_data_stack():
    code = (
        "import sys, mlcsc, mlcsc.reporting, mlcsc.experiments; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

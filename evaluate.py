"""Evaluate a checkpoint: ``python evaluate.py ckpt=path/to/best.ckpt [split=…] [n_iter=…]``.

The configuration lives in ``configs/evaluate.yaml``; the work is done by
:func:`mlcsc.training.evaluate`.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from mlcsc.training import evaluate, run_cli

    run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()

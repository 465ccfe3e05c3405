"""Train an ML-CSC classifier: ``python train.py [model=…] [data=…] [key=value …]``.

The configuration lives in ``configs/`` (``configs/train.yaml`` and its groups); the work is done
by :func:`mlcsc.training.train`.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from mlcsc.training import run_cli, train

    run_cli(train, cfg)


if __name__ == "__main__":
    main()

"""Cost of the CSC twin of the CIFAR ResNet-18 against its convolutional model.

For the CIFAR ResNet-18 (`model=resnet18`) and its twin with every convolution a `CSCConv2d`
(`model=resnet18_csc`) at several `n_iter`, and for the variant whose last stage is one
four-layer ML-CSC pursuit (`model=resnet18_mlcsc`: ML-FISTA over the stage's convolutions in
place of its two residual blocks), prints the multiply-adds per image that torch's
`FlopCounterMode` counts in one forward pass, their ratio to the ResNet's, and the median time
of one training step (forward, cross-entropy on a linear head, backward, SGD) and of inference,
each pair timed in turns in one process. A CSC layer with T FISTA steps applies its dictionary
1 + 2T times (Dᵀx, then DΓ and Dᵀ(·) per step), so the convolution count alone predicts
about (1 + 2T)× the ResNet; an ML-FISTA stage of K = 4 layers runs K + 2KT stage-sized
operators (layered thresholding, then 2K per iteration), (1 + 2T)× the stage's convolutions.
Inference is timed with the weights fixed: the first evaluation
after a training step re-estimates every layer's step norm to convergence (once per weight
change, as after each epoch).

    python benchmarks/csc_resnet.py [--threads 2] [--batch 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_utils import cpu_model, table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mlcsc.nn import CIFARResNet18


def macs_per_image(net: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        net(x)  # once-only work (the step norms) is not counted
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 2 / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-iter", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch,))
    models = {"ResNet-18": CIFARResNet18(3)}
    for n_iter in args.n_iter:
        models[f"CSC twin, T = {n_iter}"] = CIFARResNet18(3, csc=True, lam=0.1, n_iter=n_iter)
    for n_iter in args.n_iter:
        models[f"ML-CSC stage 4, T = {n_iter}"] = CIFARResNet18(
            3, mlcsc_stages=[4], lam=0.1, n_iter=n_iter, nonnegative=True
        )
    heads = {name: nn.Linear(512, 10) for name in models}
    optimizers = {
        name: torch.optim.SGD([*net.parameters(), *heads[name].parameters()], lr=0.01)
        for name, net in models.items()
    }

    def train_step(name: str) -> None:
        net, head = models[name], heads[name]
        net.train()
        loss = nn.functional.cross_entropy(head(net(x).flatten(1)), labels)
        optimizers[name].zero_grad()
        loss.backward()
        optimizers[name].step()

    def inference(name: str) -> None:
        net = models[name]
        net.eval()
        with torch.no_grad():
            net(x)

    start = time.perf_counter()
    macs = {name: macs_per_image(net, x[:2]) for name, net in models.items()}
    times = {(name, kind): [] for name in models for kind in ("train", "infer")}
    # training steps, then inference with the weights fixed: evaluation after a step that moved
    # the weights estimates the step norms again (to convergence), once per weight change
    for kind, run in (("train", train_step), ("infer", inference)):
        for name in models:  # warm-up: step norms, allocator
            run(name)
        for _ in range(args.repeats):
            for name in models:  # in turns, so that load changes hit every model alike
                begin = time.perf_counter()
                run(name)
                times[name, kind].append(time.perf_counter() - begin)
    base = "ResNet-18"
    median = {key: statistics.median(value) for key, value in times.items()}
    rows = []
    for name in models:
        rows.append([
            name,
            f"{macs[name] / 1e6:.0f} M",
            f"{macs[name] / macs[base]:.2f}×",
            f"{median[name, 'train'] * 1e3:.0f} ms",
            f"{median[name, 'train'] / median[base, 'train']:.2f}×",
            f"{median[name, 'infer'] * 1e3:.0f} ms",
            f"{median[name, 'infer'] / median[base, 'infer']:.2f}×",
        ])  # fmt: skip
    table(
        f"CIFAR ResNet-18, its CSC twin and an ML-CSC last stage, batch {args.batch}, "
        f"{args.threads} thread(s), "
        f"{cpu_model()}, torch {torch.__version__}; medians of {args.repeats}",
        ["model", "MACs/image", "MAC ratio", "train step", "ratio", "inference", "ratio"],
        rows,
    )
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()

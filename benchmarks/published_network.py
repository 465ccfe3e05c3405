"""The networks of Sulam, Aberdam, Beck & Elad (2019) written straight from their equations.

MODEL.md §3b, "The published network equations" (the paper's public code): per layer ``j`` a
filter bank ``W_j`` (``D_j``), an absolute step ``c_j`` and a per-channel bias ``b_j``; S = ReLU;
``Dᵀ`` is ``conv2d`` and ``D`` is ``conv_transpose2d`` with the layer's stride and padding.

* forward pass (the CNN, T = 0): ``Γ_j = S(c_j·W_jᵀΓ_{j−1} + b_j)``, ``Γ₀ = Y``;
* ML-ISTA, each of T iterations: rebuild ``Γ̂_K = Γ_K``, ``Γ̂_{j−1} = D_jΓ̂_j``, then from the
  input upward ``Γ_j = S(Γ̂_j − c_jD_jᵀ(D_jΓ̂_j − Γ_{j−1}) + b_j)``. For three layers that is the
  published 8-convolution iteration: Γ̂₂ = D₃Z, Γ̂₁ = D₂Γ̂₂ (2 transposed convolutions), then per
  layer one ``D_jΓ̂_j`` and one ``D_jᵀ(·)`` (3 + 3);
* ML-FISTA: ``t₀ = 1``, ``P = Γ_K``; iteration k: ``t_k = (1 + √(1 + 4t_{k−1}²))/2``,
  ``Z = Γ_K + ((t_{k−1} − 1)/t_k)(Γ_K − P)``, ``P = Γ_K``, then one ML-ISTA iteration from Z.

:class:`PublishedNetwork` runs these equations for any number of layers, with the head of an
:class:`mlcsc.MLCSCClassifier` (optional plain convolutions, then a linear layer on the flattened
deepest code). With ``reuse=True`` it takes the same iterates in the reuse form: ``D_jΓ̂_j`` for
``j ≥ 2`` *is* the rebuilt ``Γ̂_{j−1}``, so each iteration applies ``2K`` convolution-sized
operators instead of ``3K − 1`` (6 instead of 8 for three layers). :class:`PlainCNN` is the
forward pass as ``nn.Conv2d`` layers with biases (the step folded into the filters) and the
same head: the "ratio to the CNN" of ``pursuit_speed.py``.

Both load their parameters from an ``mlcsc.MLCSC(..., parametrization="reference")`` (copies:
they train on their own). ``python benchmarks/published_network.py --check`` asserts, in
float32, that they compute what mlcsc computes (relative error below 1e-5 on the logits and on
every code; gradients below 1e-4) for ML-ISTA and ML-FISTA on the MNIST and CIFAR-10
architectures of MODEL.md §4, with random non-zero steps and biases.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcsc import MLCSC, MLCSCClassifier
from mlcsc.nn import conv_features

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "PlainCNN",
    "PublishedNetwork",
    "build_classifier",
    "check",
    "randomize_",
]


@dataclass(frozen=True)
class Architecture:
    """An image size, the unfolded ML-CSC layers and the head of a reference network."""

    name: str
    in_channels: int
    image_size: int
    #: ``(num_atoms, kernel_size, stride, padding)`` per unfolded layer
    layers: tuple[tuple[int, int, int, int], ...]
    #: plain convolutions before the linear head: ``(out_channels, kernel_size, maxpool)``
    features: tuple[tuple[int, int, int], ...] = field(default=())
    num_classes: int = 10

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    def describe(self, with_features: bool = True) -> str:
        layers = " → ".join(
            f"{m}@{k}×{k}" + (f"/{s}" if s > 1 else "") + (f" pad {p}" if p else "")
            for m, k, s, p in self.layers
        )
        head = ""
        if with_features and self.features:
            head = " → " + " → ".join(
                f"conv {c}@{k}×{k}" + (" + maxpool" if pool else "") for c, k, pool in self.features
            )
        image = f"{self.in_channels}×{self.image_size}×{self.image_size}"
        return f"{image}: {layers}{head} → linear({self.num_classes})"


#: MODEL.md §4, "Supervised ML-ISTA reference" (Sulam et al. 2019, public demo code)
ARCHITECTURES = {
    "mnist": Architecture("mnist", 1, 28, ((32, 6, 2, 0), (64, 6, 2, 0), (512, 4, 1, 0))),
    "cifar10": Architecture(
        "cifar10",
        3,
        32,
        ((32, 4, 2, 1), (64, 4, 2, 1), (128, 4, 2, 1)),
        features=((256, 3, 0), (512, 3, 1), (512, 3, 1)),
    ),
}


def build_classifier(
    arch: Architecture,
    pursuit: str,
    n_iter: int,
    parametrization: str = "reference",
    with_features: bool = True,
    **options,
) -> MLCSCClassifier:
    """``MLCSCClassifier(MLCSC(...))`` of ``arch``: the unfolded layers, the plain convolutions
    (when ``with_features``) and a linear head on the flattened result.

    Raises:
        ValueError: when MLCSC refuses the combination (its message names why).
    """
    encoder = MLCSC(
        arch.in_channels,
        [list(spec) for spec in arch.layers],
        pursuit=pursuit,
        n_iter=n_iter,
        parametrization=parametrization,
        **options,
    )
    features = None
    if with_features and arch.features:
        features = conv_features(encoder.out_channels, [list(f) for f in arch.features])
    return MLCSCClassifier(encoder, arch.num_classes, arch.input_size, features=features)


def _output_paddings(layers: Sequence[Sequence[int]], input_size: Sequence[int]) -> list:
    """``output_padding`` of every ``conv_transpose2d`` so that ``D_j`` returns exactly the
    size ``D_jᵀ`` was applied to (strided layers map several sizes to one code size)."""
    paddings, size = [], [int(n) for n in input_size]
    for _, k, s, p in layers:
        code = [(n + 2 * p - k) // s + 1 for n in size]
        paddings.append(
            tuple(n - ((c - 1) * s - 2 * p + k) for n, c in zip(size, code, strict=True))
        )
        size = code
    return paddings


class PublishedNetwork(nn.Module):
    """ML-ISTA / ML-FISTA / the CNN forward pass in the published equations, any depth K.

    Args:
        classifier: an :class:`mlcsc.MLCSCClassifier` whose encoder is an
            ``MLCSC(parametrization="reference")``; filters ``W_j``, steps ``c_j``, biases
            ``b_j = −β_j`` and the head (plain convolutions and linear layer) are copied.
        pursuit: ``"ml_ista"``, ``"ml_fista"`` or ``"cnn"`` (the forward pass alone).
        n_iter: unfoldings T (default: the encoder's).
        reuse: take each ``D_jΓ̂_j`` (``j ≥ 2``) from the rebuild instead of applying ``D_j``
            again: the same iterates with ``2K`` instead of ``3K − 1`` operators per iteration.
    """

    PURSUITS = ("cnn", "ml_ista", "ml_fista")

    def __init__(
        self,
        classifier: MLCSCClassifier,
        pursuit: str,
        n_iter: int | None = None,
        reuse: bool = False,
    ):
        super().__init__()
        encoder = classifier.encoder
        if not isinstance(encoder, MLCSC) or encoder.parametrization != "reference":
            raise ValueError(
                "load the published network from an MLCSC(parametrization='reference')"
            )
        if pursuit not in self.PURSUITS:
            raise ValueError(f"pursuit must be one of {', '.join(self.PURSUITS)}, got {pursuit!r}")
        if encoder.analysis_dictionaries is not None:
            raise ValueError("the published ML-ISTA / ML-FISTA networks have tied filters")
        self.pursuit = pursuit
        self.n_iter = encoder.n_iter if n_iter is None else int(n_iter)
        self.reuse = reuse
        self.strides = [spec[2] for spec in encoder.layer_specs]
        self.paddings = [spec[3] for spec in encoder.layer_specs]
        self.input_size: tuple[int, int] | None = None
        self.layer_specs = [tuple(spec) for spec in encoder.layer_specs]
        self._output_padding: list = []

        def copied(tensor: Tensor) -> nn.Parameter:
            return nn.Parameter(tensor.detach().clone())

        self.weights = nn.ParameterList(copied(d.weight) for d in encoder.dictionaries)
        self.steps = nn.ParameterList(copied(c) for c in encoder.step_sizes)
        self.biases = nn.ParameterList(copied(-beta) for beta in encoder.thresholds)
        self.features = copy.deepcopy(classifier.features)
        self.head = copy.deepcopy(classifier.head)

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    # the two operators of layer j
    def analysis(self, h: Tensor, j: int) -> Tensor:
        """``D_jᵀh``."""
        return F.conv2d(h, self.weights[j], stride=self.strides[j], padding=self.paddings[j])

    def synthesis(self, gamma: Tensor, j: int) -> Tensor:
        """``D_jΓ`` at the size ``D_jᵀ`` was applied to."""
        return F.conv_transpose2d(
            gamma,
            self.weights[j],
            stride=self.strides[j],
            padding=self.paddings[j],
            output_padding=self._output_padding[j],
        )

    def _bias(self, j: int) -> Tensor:
        return self.biases[j].view(1, -1, 1, 1)

    def forward_pass(self, x: Tensor) -> list[Tensor]:
        """``Γ_j = S(c_j·W_jᵀΓ_{j−1} + b_j)``."""
        gammas, h = [], x
        for j in range(self.num_layers):
            h = F.relu(self.steps[j] * self.analysis(h, j) + self._bias(j))
            gammas.append(h)
        return gammas

    def encode(self, x: Tensor) -> list[Tensor]:
        """``[Γ₁, …, Γ_K]`` after the forward pass and ``n_iter`` iterations."""
        size = tuple(x.shape[-2:])
        if size != self.input_size:
            self._output_padding = _output_paddings(self.layer_specs, size)
            self.input_size = size
        gammas = self.forward_pass(x)
        if self.pursuit == "cnn":
            return gammas
        K = self.num_layers
        t, previous = 1.0, gammas[-1]
        for _ in range(self.n_iter):
            z = gammas[-1]
            if self.pursuit == "ml_fista":
                t_previous, t = t, (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
                z = gammas[-1] + ((t_previous - 1.0) / t) * (gammas[-1] - previous)
                previous = gammas[-1]
            rebuilt = [z]  # Γ̂_K = Z, Γ̂_{j−1} = D_jΓ̂_j
            for j in range(K - 1, 0, -1):
                rebuilt.insert(0, self.synthesis(rebuilt[0], j))
            signal = x  # Γ₀ = Y
            for j in range(K):
                if self.reuse and j > 0:
                    synthesized = rebuilt[j - 1]  # D_jΓ̂_j = Γ̂_{j−1}
                else:
                    synthesized = self.synthesis(rebuilt[j], j)
                gradient = self.analysis(synthesized - signal, j)
                signal = F.relu(rebuilt[j] - self.steps[j] * gradient + self._bias(j))
                gammas[j] = signal
        return gammas

    def classify(self, gamma_K: Tensor) -> Tensor:
        return self.head(self.features(gamma_K).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.encode(x)[-1])


class PlainCNN(nn.Module):
    """The forward pass as ``nn.Conv2d`` + ReLU layers (``c_j`` folded into the filters,
    bias ``b_j``) and the classifier's head: what a CNN written in plain PyTorch costs."""

    def __init__(self, classifier: MLCSCClassifier):
        super().__init__()
        encoder = classifier.encoder
        if not isinstance(encoder, MLCSC) or encoder.parametrization != "reference":
            raise ValueError("load the plain CNN from an MLCSC(parametrization='reference')")
        modules: list[nn.Module] = []
        channels = encoder.in_channels
        for j, (m, k, s, p) in enumerate(encoder.layer_specs):
            conv = nn.Conv2d(channels, m, k, stride=s, padding=p)
            with torch.no_grad():
                conv.weight.copy_(encoder.step_sizes[j] * encoder.dictionaries[j].weight)
                conv.bias.copy_(-encoder.thresholds[j])
            modules += [conv, nn.ReLU()]
            channels = m
        self.encoder = nn.Sequential(*modules)
        self.features = copy.deepcopy(classifier.features)
        self.head = copy.deepcopy(classifier.head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(self.encoder(x)).flatten(1))


# ----------------------------------------------------------------------------------- the check


@torch.no_grad()
def randomize_(classifier: MLCSCClassifier, seed: int = 0) -> MLCSCClassifier:
    """Random non-zero biases (some positive) and steps, so that the check exercises every
    term of the equations (the initial ``c_j = 1``, ``b_j = 0`` would hide a missing one)."""
    generator = torch.Generator().manual_seed(seed)
    encoder = classifier.encoder
    for beta in encoder.thresholds:
        beta.copy_(torch.rand(beta.shape, generator=generator) * 0.07 - 0.02)
    for c in encoder.step_sizes:
        c.copy_(0.7 + 0.6 * torch.rand((), generator=generator))
    return classifier


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check(
    arch: Architecture,
    pursuit: str,
    n_iter: int = 6,
    batch: int = 8,
    with_features: bool = True,
    tolerance: float = 1e-5,
    gradient_tolerance: float = 1e-4,
) -> dict[str, float]:
    """Compare mlcsc's reference network with :class:`PublishedNetwork` (both forms) and, for
    ``pursuit="cnn"``, with :class:`PlainCNN`, in float32 on CPU. Returns the largest relative
    errors and raises AssertionError when one exceeds its tolerance."""
    torch.manual_seed(0)
    mlcsc_name = "layered_thresholding" if pursuit == "cnn" else pursuit
    classifier = build_classifier(
        arch, mlcsc_name, 0 if pursuit == "cnn" else n_iter, "reference", with_features
    )
    randomize_(classifier).eval()
    x = torch.rand(
        batch, arch.in_channels, *arch.input_size, generator=torch.Generator().manual_seed(1)
    )
    labels = torch.arange(batch) % arch.num_classes
    peers: dict[str, nn.Module] = {
        "published": PublishedNetwork(classifier, pursuit),
        "reuse form": PublishedNetwork(classifier, pursuit, reuse=True),
    }
    if pursuit == "cnn":
        peers["plain CNN"] = PlainCNN(classifier)
    with torch.no_grad():
        want_codes = classifier.encoder(x, return_all=True)
        want_logits = classifier.classify(want_codes[-1])
    deepest = want_codes[-1]
    assert float(deepest.norm()) > 0 and bool((deepest == 0).any()), "no ReLU at work"
    loss = F.cross_entropy(classifier(x), labels)
    want_grads = _layer_grads(loss, classifier)
    errors: dict[str, float] = {}
    for name, peer in peers.items():
        peer.eval()
        with torch.no_grad():
            logits = peer(x)
        error = _relative(logits, want_logits)
        if isinstance(peer, PublishedNetwork):
            with torch.no_grad():
                codes = peer.encode(x)
            error = max([error] + [_relative(a, b) for a, b in zip(codes, want_codes, strict=True)])
            loss = F.cross_entropy(peer(x), labels)
            K = peer.num_layers
            grads = torch.autograd.grad(loss, [*peer.weights, *peer.steps, *peer.biases])
            got = [*grads[:K], torch.stack(grads[K : 2 * K]), *(-g for g in grads[2 * K :])]
            gradient_error = max(
                _relative(a, b) for a, b in zip(got, want_grads, strict=True) if float(b.norm()) > 0
            )
            errors[f"gradients {name}"] = gradient_error
            assert gradient_error < gradient_tolerance, (arch.name, pursuit, name, gradient_error)
        errors[f"outputs {name}"] = error
        assert error < tolerance, (arch.name, pursuit, name, error)
    return errors


def _layer_grads(loss: Tensor, classifier: MLCSCClassifier) -> list[Tensor]:
    """Gradients of ``loss`` w.r.t. the encoder's parameters: each filter bank ``W_j``, the
    steps ``(c₁, …, c_K)`` as one vector (a single step's gradient can be a small difference of
    large terms), each threshold vector ``β_j``."""
    encoder = classifier.encoder
    K = encoder.num_layers
    weights = [d.weight for d in encoder.dictionaries]
    flat = torch.autograd.grad(loss, [*weights, *encoder.step_sizes, *encoder.thresholds])
    return [*flat[:K], torch.stack(flat[K : 2 * K]), *flat[2 * K :]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="assert that the published equations and mlcsc's reference parametrization agree",
    )
    parser.add_argument("--n-iter", type=int, default=6, help="unfoldings T (default 6)")
    parser.add_argument(
        "--arch", nargs="+", choices=sorted(ARCHITECTURES), default=["mnist", "cifar10"]
    )
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 0
    print(f"torch {torch.__version__}, float32, CPU; relative errors (logits and every code;")
    print(
        "gradients of the cross-entropy w.r.t. every W_j and b_j, and the steps c) against mlcsc's"
    )
    print('MLCSC(parametrization="reference") with random steps and biases')
    for name in args.arch:
        arch = ARCHITECTURES[name]
        print(f"\n{arch.describe()}, T = {args.n_iter}")
        for pursuit in ("cnn", "ml_ista", "ml_fista"):
            errors = check(arch, pursuit, args.n_iter)
            outputs = [(k.removeprefix("outputs "), v) for k, v in errors.items() if "out" in k]
            grads = [(k.removeprefix("gradients "), v) for k, v in errors.items() if "grad" in k]
            print(
                f"  {pursuit:<9} OK  outputs: "
                + ", ".join(f"{key} {value:.1e}" for key, value in outputs)
                + "; gradients: "
                + ", ".join(f"{key} {value:.1e}" for key, value in grads)
            )
    print("\ncheck passed: outputs agree to < 1e-5 relative, gradients to < 1e-4")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed, memory and arithmetic of the unrolled pursuits as classifiers (CPU or CUDA).

For the MNIST and CIFAR-10 reference architectures of MODEL.md §4 (Sulam, Aberdam, Beck & Elad
2019) each pursuit is built as ``mlcsc.MLCSC(...)`` in a ``MLCSCClassifier`` (CIFAR-10: with the
published plain convolutions before the linear head), in both parametrizations where MLCSC
accepts them, and measured on random images, batch 128, T = 6, float32:

1. a training step (forward, cross-entropy, backward, SGD step) and inference
   (``torch.no_grad()``, eval mode): median milliseconds over ``--repeats`` after warm-up, and
   their ratio to a CNN written in plain PyTorch (``nn.Conv2d`` + ReLU, same head);
2. memory of a training step: on CPU the activations autograd saves for the backward pass
   (unique storages, parameters excluded, via ``saved_tensors_hooks``); on CUDA also the peak
   allocated memory above what was resident before the step;
3. the analytical multiply-adds per sample of one forward pass (:func:`pursuit_macs`),
   the count torch's ``FlopCounterMode`` finds in mlcsc's encoder, and the reuse form's share;
4. for ML-ISTA and ML-FISTA, mlcsc against the published-equation network of
   ``published_network.py`` (loaded from the reference model, checked equal first), timed as
   interleaved runs in one process (mlcsc, published, published reuse form, mlcsc, …): the
   median of the per-round ratios.

Run ``python benchmarks/pursuit_speed.py`` (about 5 minutes on 2 CPU cores) or ``--quick`` for
a smoke run; see ``--help`` and benchmarks/README.md. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from bench_utils import cpu_model, print_notes, table  # benchmarks/ is the script's directory
from published_network import (
    ARCHITECTURES,
    Architecture,
    PlainCNN,
    PublishedNetwork,
    build_classifier,
    check,
)
from torch import nn

#: the rows of the tables: our name → (MLCSC pursuit, unrolled?)
PURSUITS = {
    "cnn": "layered_thresholding",
    "ml_ista": "ml_ista",
    "ml_fista": "ml_fista",
    "layered_bp": "layered_bp",
    "ml_lista": "ml_lista",
    "projection": "projection",
}
PARAMETRIZATIONS = ("normalized", "reference")
#: pursuits timed against the published-equation network
PAIRED = ("ml_ista", "ml_fista")
#: the row of the plain PyTorch CNN, the denominator of every "× CNN"
CNN_ROW = "plain CNN (torch)"
#: the SGD of the MNIST recipe (MODEL.md §4)
SGD = {"lr": 0.002, "momentum": 0.9, "weight_decay": 1e-5}


# ----------------------------------------------------------------------------- arithmetic


def layer_macs(arch: Architecture) -> list[int]:
    """Multiply-adds per sample of one application of ``D_j`` (``conv_transpose2d``) or
    ``D_jᵀ`` (``conv2d``): ``M_j = m_j·m_{j−1}·k_j²·H_j·W_j`` with ``H_j × W_j`` the code size;
    a convolution and its transpose cost the same."""
    macs, size, channels = [], arch.image_size, arch.in_channels
    for m, k, s, p in arch.layers:
        size = (size + 2 * p - k) // s + 1
        macs.append(m * channels * k * k * size * size)
        channels = m
    return macs


def head_macs(arch: Architecture, with_features: bool = True) -> int:
    """Multiply-adds per sample of the head: the plain convolutions ('same' padding, 2×2
    max-pool after those marked) and the linear layer."""
    size = arch.image_size
    for _, k, s, p in arch.layers:
        size = (size + 2 * p - k) // s + 1
    channels, total = arch.layers[-1][0], 0
    for out, kernel, pool in arch.features if with_features else ():
        total += out * channels * kernel * kernel * size * size
        channels, size = out, size // 2 if pool else size
    return total + channels * size * size * arch.num_classes


def pursuit_macs(pursuit: str, macs: Sequence[int], n_iter: int, form: str = "published") -> int:
    """Analytical multiply-adds per sample of one forward pass of a pursuit.

    Counts every convolution-sized operator (``D_j`` or ``D_jᵀ`` of some layer; elementwise
    work, thresholds and momentum are left out). With ``M_j`` from :func:`layer_macs`,
    ``S = Σ_j M_j`` (the CNN) and ``S' = S − M₁`` (the rebuild ``Γ̂_{j−1} = D_jΓ̂_j``,
    ``j = K…2``), for K layers and T iterations:

    * ``cnn`` (layered thresholding, T = 0): ``S``: K operators.
    * ``ml_ista`` / ``ml_fista``, ``form="published"`` (the public code): each
      iteration rebuilds (K − 1 transposed convolutions) and takes per layer one ``D_jΓ̂_j``
      and one ``D_jᵀ(·)``: ``S + T(S' + 2S)``, i.e. **3K − 1** operators per iteration, 8 for
      three layers.
    * ``ml_ista`` / ``ml_fista``, ``form="reuse"``: ``D_jΓ̂_j`` for ``j ≥ 2`` is the rebuilt
      ``Γ̂_{j−1}``, so only ``D₁Γ̂₁`` is new: ``S + T(S' + M₁ + S) = S + 2TS``, **2K**
      operators per iteration, 6 for three layers. The ratio reuse/published tends to
      ``2S/(3S − M₁)`` per iteration.
    * ``layered_bp``: per layer the forward pass and T steps of ``D_j`` and ``D_jᵀ``:
      ``S + 2TS`` (2K per iteration; nothing to reuse).
    * ``ml_lista``: rebuild with ``B`` (K − 1), per layer ``W_jᵀW_jΓ̂_j`` (2) and
      ``B_jᵀΓ_{j−1}`` (1): ``S + T(S' + 3S)``, **4K − 1** per iteration (``W ≠ B``: nothing to
      reuse).
    * ``projection``: FISTA on ``D_eff = D₁⋯D_K`` (K synthesis + K analysis per iteration),
      then one rebuild of the intermediate codes: ``S + 2TS + S'``.

    Training adds the backward pass (about twice the forward's operators); the normalised
    parametrization also refines its norm estimates after every training step by a warm
    iteration on one image (each ``D_j`` or ``D₁⋯D_j`` and its adjoint), negligible at batch 128.
    """
    S = sum(macs)
    rebuild = S - macs[0]
    T = n_iter
    if pursuit == "cnn" or T == 0:
        return S
    if pursuit in ("ml_ista", "ml_fista"):
        if form == "reuse":
            return S + T * (rebuild + macs[0] + S)
        return S + T * (rebuild + 2 * S)
    if pursuit in ("layered_bp", "all_free"):
        return S + 2 * T * S
    if pursuit == "ml_lista":
        return S + T * (rebuild + 3 * S)
    if pursuit == "projection":
        return S + 2 * T * S + rebuild
    raise ValueError(f"no operator count for pursuit {pursuit!r}")


def operators_per_iteration(pursuit: str, K: int, form: str = "published") -> str:
    """The number of convolution-sized operators per iteration, as a formula in K and its value."""
    formulas = {
        "ml_ista": ("3K−1", 3 * K - 1),
        "ml_fista": ("3K−1", 3 * K - 1),
        "layered_bp": ("2K", 2 * K),
        "ml_lista": ("4K−1", 4 * K - 1),
        "projection": ("2K", 2 * K),
        "cnn": ("-", 0),
    }
    if form == "reuse" and pursuit in PAIRED:
        return f"2K = {2 * K}"
    text, value = formulas[pursuit]
    return text if pursuit == "cnn" else f"{text} = {value}"


def counted_macs(module: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds per sample torch's ``FlopCounterMode`` counts in one forward pass (after an
    uncounted one, which does any once-only work such as estimating the step sizes)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        module(x)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() / 2 / len(x)


def counted_flops(call: Callable[[], object]) -> float:
    """Floating-point operations torch's ``FlopCounterMode`` counts in one call (convolutions,
    their backward, matrix products; a multiply-add is two)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return float(counter.get_total_flops())


def matmul_rate(settings: Settings, size: int | None = None) -> float:
    """FLOP/s of a square float32 matrix product on the device at the run's threads: the rate
    the machine's BLAS reaches on the most favourable dense kernel there is, against which
    every model's rate is read (median of ``max(settings.repeats, 5)`` calls)."""
    size = size or (8192 if settings.device.type == "cuda" else 1024)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(settings.device) for _ in range(2))
    for _ in range(2):
        a @ b
    seconds = statistics.median(
        once(lambda: a @ b, settings.device) for _ in range(max(settings.repeats, 5))
    )
    return 2 * size**3 / seconds


# ------------------------------------------------------------------------------- timing


@dataclass
class Settings:
    device: torch.device
    batch: int
    n_iter: int
    repeats: int
    warmup: int
    amp: str
    channels_last: bool
    compile: bool
    features: bool
    check_input: bool
    matmul_flops: float | None = None  # FLOP/s of matmul_rate, measured at the start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(settings: Settings):
    if settings.amp == "bf16":
        return torch.autocast(settings.device.type, dtype=torch.bfloat16)
    return nullcontext()


def once(function: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call, the device synchronised before and after."""
    _sync(device)
    start = time.perf_counter()
    function()
    _sync(device)
    return time.perf_counter() - start


class Runner:
    """A model with its optimizer, the batch, and its training step and inference call."""

    def __init__(self, model: nn.Module, settings: Settings, x: torch.Tensor, y: torch.Tensor):
        self.model = model.to(settings.device)
        if settings.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.settings = settings
        self.x, self.y = x, y
        self.optimizer = torch.optim.SGD(self.model.parameters(), **SGD)
        self.compiled: nn.Module | None = None

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with _autocast(self.settings):
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()

    def infer(self, model: nn.Module | None = None) -> None:
        model = self.model if model is None else model
        with torch.no_grad(), _autocast(self.settings):
            model(self.x)

    def eval(self) -> Runner:
        self.model.eval()
        return self

    def warm(self, mode: str) -> None:
        call = self.train_step if mode == "train" else self.infer
        if mode == "infer":
            self.eval()
        for _ in range(self.settings.warmup):
            call()
        _sync(self.settings.device)

    def memory(self) -> dict[str, float]:
        """MiB of one training step: saved activations, and the CUDA peak above resident."""
        parameters = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in parameters:
                storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        device = self.settings.device
        if device.type == "cuda":
            _sync(device)
            resident = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            self.train_step()
        result = {"saved_mib": sum(storages.values()) / 2**20}
        if device.type == "cuda":
            _sync(device)
            result["peak_mib"] = (torch.cuda.max_memory_allocated(device) - resident) / 2**20
        return result

    def compile_inference(self) -> tuple[float, Callable[[], None]]:
        """Compile the model (eval mode); the first call's seconds and the compiled call."""
        self.eval()
        self.compiled = torch.compile(self.model)
        seconds = once(lambda: self.infer(self.compiled), self.settings.device)
        return seconds, lambda: self.infer(self.compiled)


def interleaved(runners: dict[str, Runner], mode: str, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of every runner, the runners taking turns: round r times each once."""
    for runner in runners.values():
        runner.warm(mode)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            call = runner.train_step if mode == "train" else runner.infer
            times[name].append(once(call, runner.settings.device))
    return times


def median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------ the models


@dataclass
class Row:
    """One model's measurements (times in seconds, medians)."""

    arch: str
    name: str
    parametrization: str
    train: float | None = None
    infer: float | None = None
    compiled: float | None = None
    compile_seconds: float | None = None
    memory: dict[str, float] = field(default_factory=dict)
    macs: float | None = None  # analytical, per sample, encoder only
    counted: float | None = None  # FlopCounterMode, per sample, encoder only
    train_flops: float | None = None  # FlopCounterMode, one whole training step (the batch)
    infer_flops: float | None = None  # FlopCounterMode, one whole inference call (the batch)
    note: str = ""
    amp: str = "fp32"
    device: str = "cpu"
    run: str = "fp32"  # the run's variant: fp32 or bf16, "+compile" when compiled too


def _row(arch: Architecture, name: str, parametrization: str, settings: Settings) -> Row:
    run = settings.amp + ("+compile" if settings.compile else "")
    return Row(
        arch.name, name, parametrization, amp=settings.amp, device=settings.device.type, run=run
    )


def _mlcsc(arch: Architecture, name: str, parametrization: str, settings: Settings):
    n_iter = 0 if name == "cnn" else settings.n_iter
    torch.manual_seed(0)
    return build_classifier(
        arch,
        PURSUITS[name],
        n_iter,
        parametrization,
        settings.features,
        check_input=settings.check_input,
    )


def _batch(arch: Architecture, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(settings.batch, arch.in_channels, *arch.input_size, generator=generator)
    y = torch.randint(0, arch.num_classes, (settings.batch,), generator=generator)
    x, y = x.to(settings.device), y.to(settings.device)
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _count(row: Row, runner: Runner) -> None:
    """The FLOPs of one training step and one inference call of the whole model (after the
    warm-up, so once-only work such as converging the step norms is not in them)."""
    runner.warm("train")
    row.train_flops = counted_flops(runner.train_step)
    runner.warm("infer")
    row.infer_flops = counted_flops(runner.infer)


def _measure_alone(row: Row, runner: Runner, settings: Settings, notes: list[str]) -> None:
    _count(row, runner)
    runner.warm("train")
    row.memory = runner.memory()
    row.train = statistics.median(
        once(runner.train_step, settings.device) for _ in range(settings.repeats)
    )
    runner.warm("infer")
    row.infer = statistics.median(
        once(runner.infer, settings.device) for _ in range(settings.repeats)
    )
    _measure_compiled(row, runner, settings, notes)


def _measure_compiled(row: Row, runner: Runner, settings: Settings, notes: list[str]) -> None:
    if not settings.compile:
        return
    try:
        row.compile_seconds, call = runner.compile_inference()
        for _ in range(max(settings.warmup - 1, 0)):
            call()
        row.compiled = statistics.median(
            once(call, settings.device) for _ in range(settings.repeats)
        )
    except Exception as error:  # noqa: BLE001 - a failed compile is a result to report
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        notes.append(
            f"{row.arch} {row.name} ({row.parametrization}): torch.compile failed: "
            f"{type(error).__name__}: {first[:200]}"
        )
        row.note = (row.note + "; " if row.note else "") + "compile failed"


@dataclass
class Pair:
    """mlcsc against the published-equation network, timed in turns."""

    arch: str
    name: str
    parametrization: str
    mode: str
    times: dict[str, list[float]]


def bench_arch(arch: Architecture, settings: Settings, args, notes: list[str]):
    """Every row and pair of one architecture."""
    x, y = _batch(arch, settings)
    x1 = x[:1]
    macs = layer_macs(arch)
    rows: list[Row] = []
    pairs: list[Pair] = []
    published_rows: dict[str, Row] = {}
    forms: dict[str, str] = {}

    def new_row(name: str, parametrization: str) -> Row:
        return _row(arch, name, parametrization, settings)

    # the plain PyTorch CNN: the denominator of every "× CNN"
    plain = PlainCNN(_mlcsc(arch, "cnn", "reference", settings))
    row = new_row(CNN_ROW, "-")
    row.macs = pursuit_macs("cnn", macs, 0)
    _measure_alone(row, Runner(plain, settings, x, y), settings, notes)
    rows.append(row)

    for name in args.pursuits:
        for parametrization in args.parametrizations:
            try:
                model = _mlcsc(arch, name, parametrization, settings)
            except ValueError as error:
                notes.append(
                    f"{arch.name}: MLCSC refuses {name} with parametrization="
                    f"{parametrization!r}: {error}"
                )
                row = new_row(name, parametrization)
                row.note = "refused by MLCSC"
                rows.append(row)
                continue
            row = new_row(name, parametrization)
            row.macs = pursuit_macs(name, macs, 0 if name == "cnn" else settings.n_iter)
            runner = Runner(model, settings, x, y)
            if name in PAIRED and not args.no_pairs:
                _paired(
                    arch,
                    name,
                    parametrization,
                    row,
                    runner,
                    settings,
                    x,
                    y,
                    pairs,
                    published_rows,
                    notes,
                )
            else:
                _measure_alone(row, runner, settings, notes)
            encoder = runner.model.encoder
            encoder.eval()
            row.counted = counted_macs(encoder, x1)
            rows.append(row)
            _progress(f"{arch.name}: {name} ({parametrization}) measured")
            if name in PAIRED:
                forms[f"{name} ({parametrization})"] = _form(name, macs, settings.n_iter, row)
    if forms:
        notes.append(
            f"{arch.name}: the operators FlopCounterMode counts in mlcsc's encoder match "
            + ", ".join(f"{key}: {form}" for key, form in forms.items())
            + " (published: 3K−1 operators per iteration, reuse: 2K)."
        )
    rows += [published_rows[key] for key in sorted(published_rows)]
    return rows, pairs


_STARTED = time.perf_counter()


def _progress(message: str) -> None:
    """A line on stderr with the seconds since the start: where a long run is."""
    print(f"  [{time.perf_counter() - _STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def _form(name: str, macs: Sequence[int], n_iter: int, row: Row) -> str:
    """Which form of ML-ISTA the counted multiply-adds of mlcsc's encoder match."""
    for form in ("reuse", "published"):
        if (
            row.counted is not None
            and abs(row.counted - pursuit_macs(name, macs, n_iter, form)) < 1
        ):
            return f"the {form} form"
    return f"neither form ({_mmac(row.counted)} MMAC)"


def _paired(
    arch, name, parametrization, row, runner, settings, x, y, pairs, published_rows, notes
) -> None:
    """Time the mlcsc model in turns with the published network (both forms), built from a
    reference model (the same as the mlcsc one in the reference parametrization)."""
    reference = _mlcsc(arch, name, "reference", settings)
    runners = {
        "mlcsc": runner,
        "published": Runner(PublishedNetwork(reference, name), settings, x, y),
        "reuse": Runner(PublishedNetwork(reference, name, reuse=True), settings, x, y),
    }
    _count(row, runner)
    runner.warm("train")
    row.memory = runner.memory()
    for mode in ("train", "infer"):
        times = interleaved(runners, mode, settings.repeats)
        pairs.append(Pair(arch.name, name, parametrization, mode, times))
        setattr(row, mode, statistics.median(times["mlcsc"]))
    _measure_compiled(row, runner, settings, notes)
    if parametrization != "reference":
        return
    for form in ("published", "reuse"):
        label = f"published {name}" + (", reuse form" if form == "reuse" else "")
        published = _row(arch, label, "(reference eq.)", settings)
        published.macs = pursuit_macs(name, layer_macs(arch), settings.n_iter, form)
        other = runners[form]
        published.train = statistics.median(pairs[-2].times[form])
        published.infer = statistics.median(pairs[-1].times[form])
        _count(published, other)
        other.warm("train")
        published.memory = other.memory()
        _measure_compiled(published, other, settings, notes)
        published_rows[f"{name} {form}"] = published


# ------------------------------------------------------------------------------- printing


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def _times(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}×"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mmac(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def print_arch(arch: Architecture, rows: list[Row], pairs: list[Pair], settings: Settings):
    cnn = rows[0]
    cuda = settings.device.type == "cuda"
    memory_header = "saved act. MiB" + (" / CUDA peak MiB" if cuda else "")
    headers = ["pursuit", "parametrization", "train ms", "× CNN", "infer ms", "× CNN"]
    if settings.compile:
        headers += ["compiled infer ms", "× eager", "compile s"]
    headers += [memory_header, "fwd MMAC/sample", "× CNN", "counted", "note"]
    body = []
    for row in rows:
        memory = "-"
        if row.memory:
            memory = f"{row.memory['saved_mib']:.1f}"
            if cuda:
                memory += f" / {row.memory['peak_mib']:.1f}"
        line = [
            row.name,
            row.parametrization,
            _ms(row.train),
            _times(row.train, cnn.train),
            _ms(row.infer),
            _times(row.infer, cnn.infer),
        ]
        if settings.compile:
            compile_s = "-" if row.compile_seconds is None else f"{row.compile_seconds:.1f}"
            line += [_ms(row.compiled), _times(row.compiled, row.infer), compile_s]
        line += [
            memory,
            _mmac(row.macs),
            _times(row.macs, cnn.macs),
            _mmac(row.counted),
            row.note,
        ]
        body.append(line)
    amp = "bf16 autocast" if settings.amp == "bf16" else "float32"
    layout = ", channels-last" if settings.channels_last else ""
    table(
        f"{arch.name}: {arch.describe(settings.features)}; batch {settings.batch}, "
        f"T = {settings.n_iter}, {amp}{layout}, {settings.device}; median of "
        f"{settings.repeats} after {settings.warmup} warm-up. × CNN: to the plain PyTorch CNN. "
        "Memory: one training step's activations saved for backward (unique storages, "
        "parameters excluded)"
        + ("; CUDA peak above resident" if cuda else "")
        + ". MMAC: multiply-adds of the encoder's convolutions (pursuit_macs; head "
        f"{head_macs(arch, settings.features) / 1e6:.2f} MMAC not included); counted: "
        "FlopCounterMode on mlcsc's encoder",
        headers,
        body,
    )
    if not pairs:
        return
    body = []
    for pair in pairs:
        t = pair.times
        body.append(
            [
                pair.name,
                pair.parametrization,
                pair.mode,
                _ms(statistics.median(t["mlcsc"])),
                _ms(statistics.median(t["published"])),
                _ms(statistics.median(t["reuse"])),
                f"{median_ratio(t['mlcsc'], t['published']):.2f}×",
                f"{median_ratio(t['reuse'], t['published']):.2f}×",
                f"{median_ratio(t['mlcsc'], t['reuse']):.2f}×",
            ]
        )
    table(
        f"{arch.name}: mlcsc against the published equations (published_network.py, loaded "
        f"from the reference model), timed in turns, {settings.repeats} rounds; ratios are "
        "medians of per-round ratios. The normalized rows time mlcsc's normalized model "
        "against the published (reference-equation) network of the same shapes",
        [
            "pursuit",
            "mlcsc parametrization",
            "mode",
            "mlcsc ms",
            "published ms",
            "reuse form ms",
            "mlcsc / published",
            "reuse / published",
            "mlcsc / reuse",
        ],
        body,
    )


def _gflops(flops: float | None, seconds: float | None) -> str:
    return "-" if not flops or not seconds else f"{flops / seconds / 1e9:.1f}"


def _share(flops: float | None, seconds: float | None, rate: float | None) -> str:
    return "-" if not flops or not seconds or not rate else f"{flops / seconds / rate:.0%}"


def print_rates(arch: Architecture, rows: list[Row], settings: Settings) -> None:
    """How far each model is from the arithmetic limit: the FLOPs FlopCounterMode counts in
    one call of the whole model, the rate they ran at, and that rate against the matrix
    product's (a model at 100 % would need a faster kernel library, not less overhead)."""
    rate = settings.matmul_flops
    body = [
        [
            row.name,
            row.parametrization,
            "-" if row.train_flops is None else f"{row.train_flops / 1e9:.2f}",
            _gflops(row.train_flops, row.train),
            _share(row.train_flops, row.train, rate),
            "-" if row.infer_flops is None else f"{row.infer_flops / 1e9:.2f}",
            _gflops(row.infer_flops, row.infer),
            _share(row.infer_flops, row.infer, rate),
        ]
        for row in rows
        if row.train_flops is not None
    ]
    table(
        f"{arch.name}: arithmetic rate. GFLOP: what FlopCounterMode counts in one call of the "
        "whole model (convolutions, their backward, matrix products; batch "
        f"{settings.batch}); GFLOP/s: that over the median time above; % matmul: that rate over "
        "a float32 matrix product's on the same device and threads ("
        + ("-" if rate is None else f"{rate / 1e9:.1f} GFLOP/s")
        + ")",
        [
            "pursuit",
            "parametrization",
            "train GFLOP",
            "train GFLOP/s",
            "% matmul",
            "infer GFLOP",
            "infer GFLOP/s",
            "% matmul",
        ],
        body,
    )


def print_flops(arch: Architecture, settings: Settings) -> None:
    macs = layer_macs(arch)
    K, T = len(macs), settings.n_iter
    cnn = pursuit_macs("cnn", macs, 0)
    body = []
    for name in ("ml_ista", "layered_bp", "ml_lista", "projection"):
        published = pursuit_macs(name, macs, T)
        row = [
            "ml_ista / ml_fista" if name == "ml_ista" else name,
            operators_per_iteration(name, K),
            _mmac(published),
            f"{published / cnn:.1f}×",
        ]
        if name == "ml_ista":
            reuse = pursuit_macs(name, macs, T, "reuse")
            row += [
                operators_per_iteration(name, K, "reuse"),
                _mmac(reuse),
                f"{reuse / cnn:.1f}×",
                f"{reuse / published:.3f}",
            ]
        else:
            row += ["(same)", "-", "-", "-"]
        body.append(row)
    table(
        f"{arch.name}: operator count (K = {K}, T = {T}); per-layer MMAC of D_j / D_jᵀ: "
        + ", ".join(f"{m / 1e6:.3f}" for m in macs)
        + f"; CNN {cnn / 1e6:.2f} MMAC/sample",
        [
            "pursuit",
            "operators / iteration",
            "fwd MMAC",
            "÷ CNN",
            "reuse form",
            "fwd MMAC",
            "÷ CNN",
            "reuse / published",
        ],
        body,
    )


# ---------------------------------------------------------------------------- one epoch


def epoch(settings: Settings, samples: int) -> float:
    """Seconds of one epoch of the MNIST ML-FISTA recipe (reference parametrization, T from
    the settings, SGD 0.002 / 0.9 / 1e-5, batch from the settings) on ``samples`` random
    28×28 images held on the device (no data loader): the pure training cost of an epoch."""
    arch = ARCHITECTURES["mnist"]
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(samples, 1, 28, 28, generator=generator).to(settings.device)
    labels = torch.randint(0, 10, (samples,), generator=generator).to(settings.device)
    torch.manual_seed(0)
    model = build_classifier(
        arch, "ml_fista", settings.n_iter, "reference", True, check_input=settings.check_input
    )
    runner = Runner(model, settings, images[: settings.batch], labels[: settings.batch])
    runner.warm("train")

    def run() -> None:
        order = torch.randperm(samples, device=settings.device)
        for start in range(0, samples, settings.batch):
            index = order[start : start + settings.batch]
            runner.x, runner.y = images[index], labels[index]
            if settings.channels_last:
                runner.x = runner.x.contiguous(memory_format=torch.channels_last)
            runner.train_step()

    return once(run, settings.device)


# --------------------------------------------------------------------------------- json


def _record(row: Row) -> dict:
    return asdict(row)


def summarize(paths: Sequence[str]) -> None:
    """One table from the ``--json`` files of several runs (``gpu.sh``)."""
    records, epochs = [], []
    for path in paths:
        with open(path) as handle:
            data = json.load(handle)
        for item in data if isinstance(data, list) else [data]:
            (epochs if item.get("kind") == "epoch" else records).append(item)
    variants: dict[tuple, dict[str, dict]] = {}
    for item in records:
        key = (item["arch"], item["name"], item["parametrization"])
        variants.setdefault(key, {})[item["run"]] = item

    def get(key, what, amp="fp32", compiled=False):
        """A measurement of the runs of ``amp``: eager ones from a run without compile when
        there is one, compiled ones from a run with it."""
        runs = variants.get(key, {})
        order = [amp + "+compile"] if compiled else [amp, amp + "+compile"]
        for run in order:
            if run in runs and runs[run].get(what) is not None:
                return runs[run][what]
        return None

    body = []
    archs = list(dict.fromkeys(key[0] for key in variants))
    names = list(PURSUITS)

    def order(key: tuple) -> tuple:
        arch, name, parametrization = key
        group = 0 if name == CNN_ROW else 2 if name.startswith("published") else 1
        return (archs.index(arch), group, names.index(name) if name in names else 0, name,
                parametrization)  # fmt: skip

    for key in sorted(variants, key=order):
        train = get(key, "train")
        memory = get(key, "memory") or {}
        body.append(
            [
                key[0],
                key[1],
                key[2],
                _ms(train),
                _times(train, get((key[0], CNN_ROW, "-"), "train")),
                _ms(get(key, "train", "bf16")),
                _ms(get(key, "infer")),
                _ms(get(key, "infer", "bf16")),
                _ms(get(key, "compiled", compiled=True)),
                _seconds(get(key, "compile_seconds", compiled=True)),
                "-" if not memory.get("peak_mib") else f"{memory['peak_mib']:.0f}",
                get(key, "note") or "",
            ]
        )
    table(
        "Summary (ms, median): fp32 eager, bf16 autocast, torch.compile inference; "
        "× CNN: fp32 training step to the plain PyTorch CNN; peak: CUDA MiB of an fp32 "
        "training step above resident",
        [
            "arch",
            "pursuit",
            "parametrization",
            "train fp32",
            "× CNN",
            "train bf16",
            "infer fp32",
            "infer bf16",
            "infer compiled",
            "compile s",
            "peak MiB",
            "note",
        ],
        body,
    )
    for item in epochs:
        print(f"epoch: {item['label']}: {item['seconds']:.1f} s")


# ---------------------------------------------------------------------------------- main


def _machine(settings: Settings) -> None:
    print("Unrolled pursuits: speed, memory and arithmetic (mlcsc)")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {platform.platform()}")
    device = str(settings.device)
    if settings.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(settings.device)}, cuDNN benchmark "
        device += f"{torch.backends.cudnn.benchmark}, TF32 matmul "
        device += f"{torch.backends.cuda.matmul.allow_tf32})"
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}")
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's default; 1 with --quick on CPU)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed calls (rounds for the pairs) per model; default 5 on CPU, "
        "20 on CUDA, 1 with --quick",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed calls first (default 2, 1 with --quick)"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="batch (default 128; 8 with --quick)"
    )
    parser.add_argument("--n-iter", type=int, default=6, help="unfoldings T (default 6)")
    parser.add_argument(
        "--arch", nargs="+", choices=sorted(ARCHITECTURES), default=["mnist", "cifar10"]
    )
    parser.add_argument("--pursuits", nargs="+", choices=list(PURSUITS), default=list(PURSUITS))
    parser.add_argument(
        "--parametrizations", nargs="+", choices=PARAMETRIZATIONS, default=list(PARAMETRIZATIONS)
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--amp",
        choices=["none", "bf16"],
        default="none",
        help="bf16: forward and loss under torch.autocast(bfloat16)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repeat, 1 warm-up, batch 8, 1 CPU thread"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile(model) for inference"
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="models and images in channels-last memory format",
    )
    parser.add_argument(
        "--no-features",
        action="store_true",
        help="CIFAR-10: linear head directly on Γ₃ (no plain convolutions)",
    )
    parser.add_argument(
        "--no-pairs",
        action="store_true",
        help="skip the interleaved timing against the published network",
    )
    parser.add_argument(
        "--no-check-input",
        action="store_true",
        help="MLCSC(check_input=False): no input validation (on CUDA its "
        "finiteness check waits for the device)",
    )
    parser.add_argument(
        "--epoch",
        type=int,
        default=0,
        metavar="SAMPLES",
        help="also time one epoch of the MNIST ML-FISTA recipe on this many "
        "random images held on the device (60000: an MNIST epoch)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every measurement to this file")
    parser.add_argument(
        "--summarize",
        nargs="+",
        metavar="JSON",
        help="print one table from --json files of earlier runs, and exit",
    )
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.summarize)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.quick and args.device == "cpu":
        torch.set_num_threads(1)  # a smoke run on a busy machine: no threads waiting for a core
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    default_repeats = 1 if args.quick else (20 if device.type == "cuda" else 5)
    settings = Settings(
        device=device,
        batch=args.batch or (8 if args.quick else 128),
        n_iter=args.n_iter,
        repeats=args.repeats or default_repeats,
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        amp=args.amp if args.amp != "none" else "fp32",
        channels_last=args.channels_last,
        compile=args.compile,
        features=not args.no_features,
        check_input=not args.no_check_input,
    )
    _machine(settings)
    start = time.perf_counter()
    notes: list[str] = []
    records: list[dict] = []

    def save() -> None:  # after every part, so that a run stopped at a time limit leaves results
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(records, handle, indent=1)

    if args.epoch:  # first: on a GPU it takes seconds, and a time limit should not cut it
        seconds = epoch(settings, args.epoch)
        steps = math.ceil(args.epoch / settings.batch)
        label = (
            f"MNIST ML-FISTA reference recipe, {args.epoch} random images on {device}, "
            f"batch {settings.batch}, {steps} steps, {settings.amp}"
        )
        print(f"\nOne epoch: {label}: {seconds:.2f} s ({seconds / steps * 1e3:.1f} ms/step)")
        records.append({"kind": "epoch", "label": label, "seconds": seconds})
        save()
    for name in args.arch:
        arch = ARCHITECTURES[name]
        if PAIRED[0] in args.pursuits or PAIRED[1] in args.pursuits:
            for pursuit in (p for p in PAIRED if p in args.pursuits):
                check(arch, pursuit, settings.n_iter, batch=4, with_features=settings.features)
            print(
                f"\n{name}: published network == MLCSC(parametrization='reference') checked "
                "(float32, CPU, relative error < 1e-5)"
            )
        before = matmul_rate(settings)
        rows, pairs = bench_arch(arch, settings, args, notes)
        after = matmul_rate(settings)
        # the attainable rate: a shared or throttled machine can lose it for a while
        settings.matmul_flops = max(before, after)
        notes.append(
            f"{name}: float32 matrix product ({'8192²' if device.type == 'cuda' else '1024²'}) "
            f"before the models {before / 1e9:.1f} GFLOP/s, after them {after / 1e9:.1f} "
            "GFLOP/s; the rate table reads the higher"
        )
        print_arch(arch, rows, pairs, settings)
        print_rates(arch, rows, settings)
        print_flops(arch, settings)
        records += [_record(row) for row in rows]
        save()
    notes += [
        "Inputs are random images (the arithmetic does not depend on the pixel values); the "
        "optimizer is the MNIST recipe's SGD (lr 0.002, momentum 0.9, weight decay 1e-5).",
        "Normalized rows include the upkeep of that parametrization's norm estimates (warm "
        "iterations on one image per training step; converged once, in the warm-up, for "
        "inference).",
        "The published networks of each pursuit are timed in both forms (same iterates, checked "
        "equal): 'published' applies 3K−1 operators per iteration as the public code does, "
        "'reuse form' 2K; the 'counted' column shows which one mlcsc applies.",
    ]
    print_notes(notes, start)


if __name__ == "__main__":
    main()

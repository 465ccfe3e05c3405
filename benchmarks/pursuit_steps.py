"""How fast the multi-layer pursuits converge with their steps, and how safe the steps are.

Prints three tables for the lecture's MNIST ML-CSC stack (32@7×7 stride 2 → 128@5×5 →
1024@7×7 on 28×28 digits, unit-norm random atoms) and Sulam et al. (2019)'s supervised MNIST
architecture (32@6×6/2 → 64@6×6/2 → 512@4×4):

1. **Lipschitz estimates** against the exact ``‖D‖₂²`` from the explicit matrix: the converged
   estimate ``lipschitz(size)``, the certified bound ``lipschitz()`` (no size), and two power
   iterations from a cold start (what a model used after loading a checkpoint before).
2. **Step sizes**: the chain norms ``‖D₁⋯D_j‖²`` against the products of per-layer norms, i.e.
   how much smaller the per-layer compound step ``1/∏‖D_j‖²`` is than ``1/‖D₁⋯D_j‖²``.
3. **Iterations to 1e-4** (relative) of the optimal objective of
   ``½‖Y − D_effΓ₃‖² + λ‖Γ₃‖₁`` (ℓ1 on Γ₃ only, signed codes, 8 real mnist5k digits) from the
   forward pass. With ``β₁ = β₂ = 0`` ML-ISTA / ML-FISTA are exactly ISTA / FISTA on ``D_eff``
   with their compound step (``tests/test_steps.py`` proves it), so every count is taken with
   that step on the explicit ``D_eff``; the chain-step ML-FISTA count is then confirmed by
   running ``MLCSC(pursuit="ml_fista")`` for that many iterations.

Run ``python benchmarks/pursuit_steps.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from mlcsc import MLCSC, DenseDictionary
from mlcsc.data.mnist5k import _load_mnist5k
from mlcsc.effective_dictionary import EffectiveDictionary
from mlcsc.functional import power_iteration
from mlcsc.pursuit import bp_objective

LECTURE_MNIST = [(32, 7, 2, 0), (128, 5, 1, 0), (1024, 7, 1, 0)]
SULAM_MNIST = [(32, 6, 2, 0), (64, 6, 2, 0), (512, 4, 1, 0)]


def exact_norm(operator: EffectiveDictionary) -> float:
    return float(torch.linalg.matrix_norm(operator.matrix(), ord=2) ** 2)


def lipschitz_table(model: MLCSC, name: str) -> None:
    sizes = model.layer_sizes((28, 28))
    print(f"\n{name}: Lipschitz constants of each layer on 28×28 inputs")
    print(
        "| layer | exact ‖D‖² | lipschitz(size) | error | lipschitz() bound | ratio | "
        "2 cold power iterations | time (size / bound) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for j, dictionary in enumerate(model.dictionaries):
        exact = exact_norm(EffectiveDictionary([dictionary], [sizes[j]]))
        dictionary._power_vector = None  # a cold start
        start = time.perf_counter()
        estimate = float(dictionary.lipschitz(sizes[j]))
        t_size = time.perf_counter() - start
        start = time.perf_counter()
        bound = float(dictionary.lipschitz())
        t_bound = time.perf_counter() - start
        shape = dictionary._code_shape(sizes[j])
        x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        cold, _ = power_iteration(
            lambda v, d=dictionary, s=sizes[j]: d.analyze(d.synthesize(v, s)), x0, n_iter=2
        )
        print(
            f"| {j + 1} | {exact:.4f} | {estimate:.4f} | {estimate / exact - 1:+.1e} | "
            f"{bound:.4f} | {bound / exact:.3f} | {float(cold) / exact:.2f} of exact | "
            f"{t_size * 1e3:.0f} ms / {t_bound * 1e3:.0f} ms |"
        )


def chain_table(model: MLCSC, name: str) -> list[float]:
    sizes = model.layer_sizes((28, 28))[:-1]
    dictionaries = list(model.dictionaries)
    print(f"\n{name}: chain norms against products of layer norms (28×28)")
    print("| j | ‖D₁⋯D_j‖² exact | estimate | error | ∏_{i≤j}‖D_i‖² | ratio |")
    print("|---|---|---|---|---|---|")
    product, chains = 1.0, []
    for j in range(len(dictionaries)):
        chain = EffectiveDictionary(dictionaries[: j + 1], sizes[: j + 1])
        exact = exact_norm(chain)
        estimate = float(chain.lipschitz())
        product *= exact_norm(EffectiveDictionary([dictionaries[j]], [sizes[j]]))
        chains.append(exact)
        print(
            f"| {j + 1} | {exact:.4f} | {estimate:.4f} | {estimate / exact - 1:+.1e} | "
            f"{product:.3f} | {product / exact:.1f}× |"
        )
    return chains


def iterates(matrix, y, lam, start, step, accelerate=True):
    """(F)ISTA on the explicit matrix from ``start``: yields ``Γ¹, Γ², …``."""
    previous, point, t = start, start, 1.0
    while True:
        z = point - step * ((point @ matrix.T - y) @ matrix)
        new = torch.sign(z) * torch.relu(z.abs() - step * lam)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2 if accelerate else 1.0
        point = new + ((t - 1) / t_next) * (new - previous) if accelerate else new
        previous, t = new, t_next
        yield new


def first_within(matrix, y, lam, sequence, optimum, tol, limit):
    """The first iteration of ``sequence`` within ``tol`` (relative) of ``optimum``."""
    dictionary = DenseDictionary(matrix)
    for k, codes in zip(range(1, limit + 1), sequence, strict=False):
        if float(bp_objective(dictionary, codes, y, lam).sum()) - optimum <= tol * optimum:
            return k
    return None


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lam", type=float, default=0.2)
    parser.add_argument("--digits", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")

    torch.manual_seed(0)
    sulam = MLCSC(1, SULAM_MNIST, pursuit="ml_fista").double()
    lipschitz_table(sulam, "Sulam et al. MNIST architecture")
    torch.manual_seed(0)
    lecture = MLCSC(1, LECTURE_MNIST, pursuit="ml_fista", threshold_mode="soft").double().eval()
    lipschitz_table(lecture, "Lecture MNIST stack")
    chain_table(sulam, "Sulam et al. MNIST architecture")
    chains = chain_table(lecture, "Lecture MNIST stack")

    images, _ = _load_mnist5k()
    x = images[: args.digits].double() / 255.0
    y = x.flatten(1)
    lam = args.lam
    with torch.no_grad():
        for threshold in lecture.thresholds[:-1]:
            threshold.zero_()
        lecture.thresholds[-1].fill_(lam)
    sizes = lecture.layer_sizes((28, 28))[:-1]
    matrix = EffectiveDictionary(list(lecture.dictionaries), sizes).matrix()
    lecture.n_iter = 0
    start = lecture(x).detach().flatten(1)
    exact = chains[-1]
    solver = iterates(matrix, y, lam, start, 1 / exact)
    for _ in range(20000):
        codes = next(solver)
    optimum = float(bp_objective(DenseDictionary(matrix), codes, y, lam).sum())

    lecture.n_iter = 1
    lecture(x)  # converged chain estimates, as a model uses them
    estimate = float(lecture.lipschitz_constants[-1])
    layer_product = math.prod(
        exact_norm(EffectiveDictionary([d], [sizes[j]])) for j, d in enumerate(lecture.dictionaries)
    )
    rows = [
        ("FISTA on explicit D_eff, step 1/‖D_eff‖² (exact)", 1 / exact, True),
        ("ML-FISTA, chain steps (default for signed codes)", 1 / estimate, True),
        ("ML-FISTA, per-layer steps 1/‖D_j‖² (before)", 1 / layer_product, True),
        ("ML-ISTA, chain steps", 1 / estimate, False),
        ("ML-ISTA, per-layer steps (before)", 1 / layer_product, False),
    ]
    print(
        f"\nIterations to 1e-4 of the optimal objective, lecture MNIST stack, {args.digits} "
        f"mnist5k digits, λ₃ = {lam}, β₁ = β₂ = 0, signed codes"
    )
    print("| pursuit | compound step | iterations |")
    print("|---|---|---|")
    counts = {}
    for label, step, accelerate in rows:
        sequence = iterates(matrix, y, lam, start, step, accelerate)
        count = first_within(matrix, y, lam, sequence, optimum, 1e-4, 20000)
        counts[label] = count
        print(f"| {label} | {step:.4g} | {count if count is not None else '> 20000'} |")
    chain_count = counts[rows[1][0]]
    lecture.n_iter = chain_count
    codes = lecture(x).detach().flatten(1)
    value = float(bp_objective(DenseDictionary(matrix), codes, y, lam).sum())
    print(
        f"\nMLCSC(pursuit='ml_fista') run for {chain_count} iterations: relative gap "
        f"{(value - optimum) / optimum:.2e} (FISTA on D_eff needs {counts[rows[0][0]]}: ratio "
        f"{chain_count / counts[rows[0][0]]:.2f})"
    )


if __name__ == "__main__":
    main()

"""Sparse coding benchmark: mlcsc against scikit-learn, SPAMS and SPORCO in one process.

Three problems, each printed as a table of medians over ``--repeats`` runs with the ratio of
every time to mlcsc's float64 time:

1. OMP on a Sparseland dictionary (n = 64, m = 256 random unit-norm Gaussian atoms, k = 8,
   signals that are random 8-sparse combinations plus small noise): :func:`mlcsc.pursuit.omp`
   in float64 and float32 against ``sklearn.linear_model.orthogonal_mp_gram`` (given the Gram
   matrix and ``Dᵀy``, which are precomputed and not timed) and ``spams.omp``, with the share of
   signals whose support equals scikit-learn's and the share whose planted support is found.
2. Basis pursuit ``min ½‖y − Dα‖² + λ‖α‖₁`` on the same dictionary at equal objective: the
   peers (``spams.lasso`` mode 2, ``sklearn.decomposition.sparse_encode`` with LARS and
   coordinate descent) run to convergence; mlcsc's :func:`~mlcsc.pursuit.fista` is timed for the
   smallest number of iterations whose objective is within ``1e-4`` (relative) of the best.
3. Convolutional basis pursuit on a 128 × 128 grayscale image (``skimage.data.camera``, scaled
   to [0, 1], mean removed) with 16 random 8 × 8 filters: mlcsc ``fista`` on a
   :class:`~mlcsc.ConvDictionary` against SPORCO's ADMM, again to within ``1e-4`` of the best
   objective (see the printed notes for the boundary handling).

Run ``python benchmarks/sparse_coding.py`` (about 3–5 minutes on 2 cores) or with ``--quick``
(under a minute). Peers that fail to import are skipped with a note.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings
from contextlib import nullcontext

import numpy as np
import torch
from bench_utils import (  # benchmarks/ is the script's directory
    Seconds,
    cpu_model,
    ms,
    optional,
    package_version,
    print_notes,
    random_dictionary,
    ratio,
    same_support,
    sparse_signals,
    table,
    timed,
)

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.pursuit import bp_objective, fista, omp, omp_kernel
from mlcsc.pursuit.batch_omp import batch_omp

TARGET = 1e-4  # relative objective gap that counts as "converged" for the BP comparisons


# ------------------------------------------------------------------------------------------- OMP


def omp_benchmark(args, spams, notes: list[str]) -> None:
    from sklearn.linear_model import orthogonal_mp_gram

    n, m, k = 64, 256, 8
    weight = random_dictionary(n, m, seed=0)
    y, gamma = sparse_signals(weight, args.signals, k, noise=0.01, seed=1)
    dense64 = DenseDictionary(weight)
    dense32 = DenseDictionary(weight.float())
    y32 = y.float()
    planted = gamma.numpy()

    rows, codes = [], {}
    t64, c64 = timed(lambda: omp(dense64, y, k=k), args.repeats)
    t32, c32 = timed(lambda: omp(dense32, y32, k=k), args.repeats)
    codes["mlcsc omp float64"], codes["mlcsc omp float32"] = c64.numpy(), c32.double().numpy()
    times = {"mlcsc omp float64": t64, "mlcsc omp float32": t32}
    if omp_kernel.numba is not None:  # omp() ran the compiled kernel: time the tensor kernel too
        for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
            label = f"mlcsc omp {name}, tensor kernel"
            matrix, signals = weight.to(dtype), y.to(dtype)
            times[label], sparse = timed(
                lambda m=matrix, s=signals: batch_omp(m, s, k, None, compiled=False), args.repeats
            )
            codes[label] = sparse.to_dense(m).double().numpy()
        notes.append(
            f"mlcsc omp runs the compiled Batch-OMP kernel (Numba {omp_kernel.numba.__version__}, "
            f"{torch.get_num_threads()} threads); 'tensor kernel' rows: the same iterations as "
            "batched tensor operations (what runs without Numba and on GPUs)."
        )
    else:
        notes.append("Numba is not installed: mlcsc omp runs the tensor kernel.")

    d = weight.numpy()
    gram, xy = d.T @ d, d.T @ y.numpy().T  # precomputed, not timed

    def sklearn_omp():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return orthogonal_mp_gram(gram, xy, n_nonzero_coefs=k)

    sklearn_repeats = max(1, min(args.repeats, 2))
    t_sk, c_sk = timed(sklearn_omp, sklearn_repeats)
    codes["scikit-learn orthogonal_mp_gram"] = np.asarray(c_sk).T
    times["scikit-learn orthogonal_mp_gram"] = t_sk
    if isinstance(spams, Exception):
        notes.append(f"SPAMS skipped: import failed ({spams!r}).")
    else:
        for dtype in (np.float64, np.float32):
            x = np.asfortranarray(y.numpy().T.astype(dtype))
            dd = np.asfortranarray(d.astype(dtype))
            name = f"SPAMS omp {np.dtype(dtype).name}"
            times[name], result = timed(
                lambda x=x, dd=dd: spams.omp(x, dd, L=k, eps=0.0, numThreads=args.threads),
                args.repeats,
            )
            codes[name] = result.toarray().T.astype(np.float64)
        notes.append(
            "SPAMS' omp is order-recursive matching pursuit (forward selection): it picks the "
            "atom that most reduces the residual, argmax |d_j'r|^2/||P_perp d_j||^2, where OMP "
            "picks argmax |d_j'r|; its supports therefore differ from OMP's on some signals "
            "(checked against a brute-force ORMP in the tests). spams.omp is called with "
            "eps=0 explicitly: without it, float32 input returns all-zero codes (spams-bin "
            f"{package_version('spams-bin')})."
        )
    reference = codes["scikit-learn orthogonal_mp_gram"]
    for name, seconds in times.items():
        rows.append(
            [
                name,
                ms(seconds),
                ratio(seconds, t64),
                f"{same_support(codes[name], reference):.2f} %",
                f"{same_support(codes[name], planted):.2f} %",
            ]
        )
    table(
        f"OMP: n={n}, m={m}, k={k}, {args.signals} signals (8-sparse + noise 0.01), "
        f"median of {args.repeats} (scikit-learn: {sklearn_repeats})",
        [
            "solver",
            "wall time (CPU time)",
            "wall / mlcsc f64",
            "support = sklearn",
            "planted support found",
        ],
        rows,
    )

    def speed(peer: str, ours: Seconds) -> str:
        other = times[peer]
        return f"{other / ours:.2f}× (CPU time {other.cpu / ours.cpu:.2f}×)"

    print(f"mlcsc float64 vs scikit-learn: {speed('scikit-learn orthogonal_mp_gram', t64)} faster")
    if "SPAMS omp float64" in times:
        print(
            f"mlcsc vs SPAMS (> 1 = mlcsc faster): float64 {speed('SPAMS omp float64', t64)}, "
            f"float32 {speed('SPAMS omp float32', t32)}"
        )
    notes.append(
        "OMP timings: mlcsc includes computing the Gram matrix and D'y inside omp(); "
        "scikit-learn's orthogonal_mp_gram is given both precomputed (not timed)."
    )


# -------------------------------------------------------------------------------------------- BP


def _fista_trajectory(
    dictionary, y: torch.Tensor, lam: float, iterations: int, objective, every: int = 1
) -> list[tuple[int, float]]:
    """Objectives along the iterates of :func:`mlcsc.pursuit.fista` (same step, same updates),
    evaluated every ``every`` iterations, so that the iteration count that reaches a target is
    found in one run; the timed runs then call ``fista`` itself with that count."""
    from mlcsc.pursuit import proximal_gradient_step

    trace = []
    with torch.no_grad():
        step = 1.0 / float(dictionary.lipschitz(input_size=dictionary.signal_size(y)))
        codes = torch.zeros_like(dictionary.analyze(y))
        point, t = codes, 1.0
        for iteration in range(1, iterations + 1):
            new = proximal_gradient_step(dictionary, point, y, step, lam, "soft")
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            point = new + ((t - 1.0) / t_next) * (new - codes)
            t, codes = t_next, new
            if iteration % every == 0 or iteration == iterations:
                trace.append((iteration, objective(codes)))
    return trace


def _first_reaching(trace: list[tuple[int, float]], target: float) -> int | None:
    return next((iteration for iteration, value in trace if value <= target), None)


def _fista_traces(make_dictionary, y: torch.Tensor, lam: float, cap: int, score, every: int = 1):
    """``{dtype: (dictionary, y, trajectory)}`` of FISTA in float64 and float32, ``score``
    evaluating the (float64) objective of codes."""
    traces = {}
    for dtype in (torch.float64, torch.float32):
        dictionary, y_t = make_dictionary(dtype), y.to(dtype)
        traces[dtype] = (
            dictionary,
            y_t,
            _fista_trajectory(dictionary, y_t, lam, cap, score, every),
        )
    return traces


def _best(traces) -> float:
    return min(value for _, _, trace in traces.values() for _, value in trace)


def _bp_row(name: str, seconds, reference, value: float, best: float, iterations) -> list[str]:
    """A row of the BP tables: time, ratio to mlcsc float64, objective, gap to the best."""
    versus = ratio(seconds, reference) if reference else "-"
    return [name, ms(seconds), versus, f"{value:.6f}", f"{(value - best) / best:.1e}", iterations]


def _fista_rows(traces, target: float, best: float, cap: int, lam: float, score, timing):
    """The mlcsc rows of a BP table: ``fista`` timed (``timing(run) -> (seconds, codes)``) for
    the iterations that reach ``target``; returns the rows and the float64 time."""
    rows, reference = [], None
    for dtype, (dictionary, y_t, trace) in traces.items():
        name = f"mlcsc fista {str(dtype).removeprefix('torch.')}"
        iterations = _first_reaching(trace, target)
        if iterations is None:
            rows.append([name, "-", "-", f"{trace[-1][1]:.6f}", "-", f"not reached in {cap}"])
            continue

        def run(dictionary=dictionary, y_t=y_t, iterations=iterations):
            with torch.no_grad():
                return fista(dictionary, y_t, lam, max_iter=iterations, tol=0.0)

        seconds, codes = timing(run)
        reference = reference or seconds
        rows.append(_bp_row(name, seconds, reference, score(codes), best, str(iterations)))
    return rows, reference


def _bp_headers(objective: str) -> list[str]:
    return [
        "solver",
        "wall time (CPU time)",
        "wall / mlcsc f64",
        objective,
        "rel. gap",
        "iterations",
    ]


def bp_benchmark(args, spams, notes: list[str]) -> None:
    from sklearn.decomposition import sparse_encode

    n, m, lam = 64, 256, 0.1
    batch = max(1, args.signals // 10)
    weight = random_dictionary(n, m, seed=0)
    y, _ = sparse_signals(weight, batch, 8, noise=0.01, seed=2)
    dictionary = DenseDictionary(weight)
    d = weight.numpy()

    def objective(codes: np.ndarray) -> float:
        with torch.no_grad():
            return float(bp_objective(dictionary, torch.from_numpy(codes), y, lam).mean())

    peers: dict[str, tuple[float, float]] = {}
    peer_repeats = max(1, min(args.repeats, 2))
    if isinstance(spams, Exception):
        notes.append(f"SPAMS lasso skipped: import failed ({spams!r}).")
    else:
        x, dd = np.asfortranarray(y.numpy().T), np.asfortranarray(d)
        seconds, result = timed(
            lambda: spams.lasso(x, D=dd, lambda1=lam, lambda2=0.0, mode=2, numThreads=args.threads),
            args.repeats,
        )
        peers["SPAMS lasso (LARS, mode=2)"] = (seconds, objective(result.toarray().T))
    for algorithm in ("lasso_lars", "lasso_cd"):
        seconds, result = timed(
            lambda algorithm=algorithm: sparse_encode(
                y.numpy(), d.T, algorithm=algorithm, alpha=lam, max_iter=10000
            ),
            peer_repeats,
        )
        peers[f"scikit-learn sparse_encode {algorithm}"] = (seconds, objective(result))
    notes.append(
        "BP objective: mean over signals of 1/2||y - D a||^2 + lambda ||a||_1 with "
        f"lambda={lam}; SPAMS lasso mode=2 minimises exactly this (lambda1=lambda); "
        "sklearn's sparse_encode(alpha=lambda) does too: it hands Lasso/LassoLars "
        "alpha/n_features, whose 1/(2 n_samples) data term makes the objectives equal "
        "(confirmed by the objectives in the table)."
    )

    cap = 2000 if args.quick else 5000

    def score(codes: torch.Tensor) -> float:
        return objective(codes.double().numpy())

    traces = _fista_traces(lambda dtype: DenseDictionary(weight.to(dtype)), y, lam, cap, score)
    best = min([_best(traces), *(value for _, value in peers.values())])
    rows, reference = _fista_rows(
        traces, best * (1 + TARGET), best, cap, lam, score, lambda run: timed(run, args.repeats)
    )
    for name, (seconds, value) in peers.items():
        rows.append(_bp_row(name, seconds, reference, value, best, "to convergence"))
    table(
        f"BP (Lasso): n={n}, m={m}, lambda={lam}, {batch} signals, mlcsc timed to within "
        f"{TARGET:g} of the best objective, median of {args.repeats}",
        _bp_headers("mean objective"),
        rows,
    )


# ------------------------------------------------------------------------- convolutional BP


def _camera(size: int) -> np.ndarray:
    from skimage import data, transform

    image = data.camera().astype(np.float64) / 255.0
    image = transform.resize(image, (size, size), anti_aliasing=True)
    return image - image.mean()


def conv_benchmark(args, sporco_cbpdn, notes: list[str]) -> None:
    size = 64 if args.quick else 128
    filters, kernel, lam = 16, 8, 0.05
    image = _camera(size)
    generator = np.random.default_rng(0)
    bank = generator.standard_normal((filters, kernel, kernel))
    bank /= np.linalg.norm(bank.reshape(filters, -1), axis=1)[:, None, None]
    y = torch.from_numpy(image).view(1, 1, size, size)

    # every code position whose filter touches the image: padding k − 1, codes (size + k − 1)²
    def conv_dictionary(dtype):
        dictionary = ConvDictionary(1, filters, kernel, padding=kernel - 1).to(dtype)
        with torch.no_grad():
            dictionary.weight.copy_(torch.from_numpy(bank).unsqueeze(1))
        return dictionary

    reference_dictionary = conv_dictionary(torch.float64)

    def objective(codes: torch.Tensor) -> float:
        with torch.no_grad():
            return float(bp_objective(reference_dictionary, codes.double(), y, lam).sum())

    best = math.inf
    sporco_trace = None
    if isinstance(sporco_cbpdn, Exception):
        notes.append(f"SPORCO skipped: import failed ({sporco_cbpdn!r}).")
    else:
        sporco_trace = _sporco_masked(sporco_cbpdn, image, bank, lam, 150 if args.quick else 300)
        best = min(value for _, value in sporco_trace)
    cap, every = (400, 5) if args.quick else (800, 5)
    traces = _fista_traces(conv_dictionary, y, lam, cap, objective, every)
    best = min(best, _best(traces))
    target = best * (1 + TARGET)
    repeats = max(1, args.repeats // 2)
    rows, reference = _fista_rows(
        traces, target, best, cap, lam, objective, lambda run: timed(run, repeats, warmup=False)
    )
    if sporco_trace is not None:
        reached = [(t, v, i + 1) for i, (t, v) in enumerate(sporco_trace) if v <= target]
        name = "SPORCO admm.cbpdn.ConvBPDNMaskDcpl"
        if reached:
            seconds, value, iterations = reached[0]
            rows.append(_bp_row(name, seconds, reference, value, best, str(iterations)))
        else:
            seconds, value = sporco_trace[-1]
            row = _bp_row(name, seconds, None, value, best, f"not reached in {len(sporco_trace)}")
            rows.append([name, f"> {ms(seconds)}", *row[2:]])
    table(
        f"Convolutional BP: camera {size}×{size} (mean removed), {filters} random unit "
        f"{kernel}×{kernel} filters, lambda={lam}, time to within {TARGET:g} of the best "
        "objective",
        _bp_headers("objective"),
        rows,
    )
    notes.append(
        "Convolutional BP boundary handling: mlcsc's ConvDictionary with padding k-1 has a code "
        "at every position whose filter touches the image and measures the residual on the "
        "image only (no wrap-around). SPORCO's ConvBPDN is circular, so it is given the same "
        "problem: the image zero-padded by k-1 on the bottom/right, circular convolution on "
        "that (size+k-1)^2 domain, and the mask variant ConvBPDNMaskDcpl with the mask 1 on the "
        "image and 0 on the padding. Then every circular code position maps one-to-one to an "
        "mlcsc code position (shift by k-1) and the two objectives are the same function; "
        "SPORCO's objective is evaluated here by FFT on its returned coefficients every "
        "iteration and its time is SPORCO's own solve timer without that evaluation (nor its "
        "iteration statistics)."
    )


def _sporco_masked(cbpdn, image: np.ndarray, bank: np.ndarray, lam: float, iterations: int):
    """Run SPORCO's masked ADMM; return [(solve seconds, objective)] per iteration."""
    size, kernel, filters = image.shape[0], bank.shape[1], bank.shape[0]
    domain = size + kernel - 1
    signal = np.zeros((domain, domain))
    signal[:size, :size] = image
    mask = np.zeros((domain, domain))
    mask[:size, :size] = 1.0
    atoms = np.ascontiguousarray(np.transpose(bank, (1, 2, 0)))  # (k, k, M)
    padded = np.zeros((domain, domain, filters))
    padded[:kernel, :kernel] = atoms
    spectrum = np.fft.rfft2(padded, axes=(0, 1))
    trace = []

    def callback(solver) -> bool:
        solver.timer.stop("solve_wo_func")
        coefficients = solver.getmin().reshape(domain, domain, filters)
        fit = np.fft.irfft2(
            (spectrum * np.fft.rfft2(coefficients, axes=(0, 1))).sum(axis=2),
            s=(domain, domain),
            axes=(0, 1),
        )
        value = 0.5 * np.sum((mask * (fit - signal)) ** 2) + lam * np.abs(coefficients).sum()
        trace.append((solver.timer.elapsed("solve_wo_func"), float(value)))
        solver.timer.start("solve_wo_func")
        return False

    options = cbpdn.ConvBPDNMaskDcpl.Options(
        {
            "Verbose": False,
            "MaxMainIter": iterations,
            "RelStopTol": 0.0,
            "AbsStopTol": 0.0,
            "Callback": callback,
        }
    )
    solver = cbpdn.ConvBPDNMaskDcpl(atoms, signal, lam, mask, options)
    solver.solve()
    return trace


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per solver (median)")
    parser.add_argument("--signals", type=int, default=None, help="signals for OMP (BP: 1/10)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (< 1 min)")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads for torch, SPAMS and BLAS (default 1)"
    )
    parser.add_argument(
        "--only", choices=["omp", "bp", "conv"], nargs="*", help="run only these sections"
    )
    args = parser.parse_args(argv)
    if args.signals is None:
        args.signals = 2000 if args.quick else 10000
    if args.quick:
        args.repeats = min(args.repeats, 1)
    sections = args.only or ["omp", "bp", "conv"]

    torch.set_num_threads(args.threads)
    threadpoolctl = optional("threadpoolctl")
    limits = (
        nullcontext()
        if isinstance(threadpoolctl, Exception)
        else threadpoolctl.threadpool_limits(args.threads)
    )
    spams = optional("spams")
    sporco_cbpdn = optional("sporco.admm.cbpdn")

    print("Sparse coding benchmark (mlcsc vs scikit-learn, SPAMS, SPORCO)")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {platform.platform()}")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"scikit-learn {package_version('scikit-learn')}, spams "
        f"{package_version('spams-bin')}, sporco {package_version('sporco')}; every peer "
        f"runs with {args.threads} thread(s)"
    )
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    notes: list[str] = []
    start = time.perf_counter()
    with limits:
        if "omp" in sections:
            omp_benchmark(args, spams, notes)
        if "bp" in sections:
            bp_benchmark(args, spams, notes)
        if "conv" in sections:
            conv_benchmark(args, sporco_cbpdn, notes)
    print_notes(notes, start)


if __name__ == "__main__":
    main()

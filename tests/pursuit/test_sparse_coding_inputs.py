"""Bad input to the single-dictionary pursuits: a ValueError that names the argument.

omp, thresholding, ista and fista share their checks (``Dictionary.check_signal``,
``mlcsc.checks`` and ``mlcsc.pursuit._validation``), so every case runs against all four where
it applies.
"""

from __future__ import annotations

import re

import pytest
import torch

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.pursuit import fista, ista, omp, thresholding

pytestmark = pytest.mark.usefixtures("single_thread")

N, M = 7, 11


def _dense() -> DenseDictionary:
    weight = torch.randn(N, M, dtype=torch.float64)
    return DenseDictionary(weight / weight.norm(dim=0))


def _conv() -> ConvDictionary:
    return ConvDictionary(2, 3, 3, stride=1, padding=1).double()


# every solver called with a valid setting of its own parameters
SOLVERS = {
    "omp": lambda d, y, **kw: omp(d, y, **({"k": 2} | kw)),
    "thresholding": lambda d, y, **kw: thresholding(d, y, **({"k": 2} | kw)),
    "ista": lambda d, y, **kw: ista(d, y, **({"lam": 0.1, "max_iter": 3} | kw)),
    "fista": lambda d, y, **kw: fista(d, y, **({"lam": 0.1, "max_iter": 3} | kw)),
}
ALL = list(SOLVERS)


def _raises(call, *fragments: str) -> str:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_valid_calls_work():
    dense, conv = _dense(), _conv()
    for solve in SOLVERS.values():
        assert solve(dense, torch.randn(2, N, dtype=torch.float64)).shape == (2, M)
        y = torch.randn(2, 2, 6, 5, dtype=torch.float64)
        assert solve(conv, y).shape == (2, 3, 6, 5)


# ------------------------------------------------------------------------------------ dictionary


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("solver", ALL)
def test_non_finite_dictionary(solver, bad):
    dictionary = _dense()
    with torch.no_grad():
        dictionary.weight[2, 5] = bad
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: SOLVERS[solver](dictionary, y), "dictionary", f"({N}, {M})", "non-finite")


@pytest.mark.parametrize("solver", ALL)
def test_all_zero_atom(solver):
    dense, conv = _dense(), _conv()
    with torch.no_grad():
        dense.weight[:, 4] = 0.0
        conv.weight[1] = 0.0
    _raises(
        lambda: SOLVERS[solver](dense, torch.randn(2, N, dtype=torch.float64)),
        "dictionary",
        "all-zero atoms at indices [4]",
    )
    _raises(
        lambda: SOLVERS[solver](conv, torch.randn(1, 2, 5, 5, dtype=torch.float64)),
        "dictionary",
        "all-zero atoms at indices [1]",
    )


@pytest.mark.parametrize("solver", ALL)
def test_not_a_dictionary(solver):
    _raises(lambda: SOLVERS[solver](torch.eye(3), torch.randn(1, 3)), "dictionary", "Tensor")


# --------------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("solver", ALL)
def test_non_finite_signal(solver, bad):
    y = torch.randn(3, N, dtype=torch.float64)
    y[1, 2] = bad
    _raises(lambda: SOLVERS[solver](_dense(), y), "y of shape (3, 7)", "non-finite")
    y = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    y[0, 1, 2, 3] = bad
    _raises(lambda: SOLVERS[solver](_conv(), y), "y of shape (2, 2, 5, 5)", "non-finite")


@pytest.mark.parametrize("solver", ALL)
@pytest.mark.parametrize("shape", [(2, N + 1), (2, N - 1), (N,), (2, 1, N)])
def test_signal_size_not_matching_a_dense_dictionary(solver, shape):
    y = torch.randn(*shape, dtype=torch.float64)
    _raises(lambda: SOLVERS[solver](_dense(), y), "y must have shape (B, 7)", str(tuple(shape)))


@pytest.mark.parametrize("solver", ALL)
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (2, 1, 5, 5), (2, 5, 5), (2, 50)])
def test_wrong_channels_for_a_conv_dictionary(solver, shape):
    y = torch.randn(*shape, dtype=torch.float64)
    _raises(lambda: SOLVERS[solver](_conv(), y), "y must have shape (B, 2, H, W)", "in_channels=2")


@pytest.mark.parametrize("solver", ALL)
def test_signal_smaller_than_the_filters(solver):
    conv = ConvDictionary(1, 2, 5).double()
    y = torch.randn(1, 1, 3, 8, dtype=torch.float64)
    _raises(lambda: SOLVERS[solver](conv, y), "y of shape (1, 1, 3, 8)", "5×5")


@pytest.mark.parametrize("solver", ALL)
def test_signal_dtype_and_type(solver):
    _raises(
        lambda: SOLVERS[solver](_dense(), torch.randn(2, N, dtype=torch.float32)),
        "y has dtype torch.float32",
        "torch.float64",
    )
    _raises(lambda: SOLVERS[solver](_dense(), torch.ones(2, N, dtype=torch.long)), "y", "int64")
    _raises(lambda: SOLVERS[solver](_dense(), [[0.0] * N]), "y must be a tensor", "list")


# ------------------------------------------------------------------------------- sparsity level k


@pytest.mark.parametrize("solver", ["omp", "thresholding"])
@pytest.mark.parametrize("k", [0, -1, M + 1, 2.0, True])
def test_bad_k_for_a_dense_dictionary(solver, k):
    message = _raises(lambda: SOLVERS[solver](_dense(), torch.randn(2, N).double(), k=k), "k")
    assert f"in [1, {M}]" in message and repr(k) in message


@pytest.mark.parametrize("solver", ["omp", "thresholding"])
def test_k_is_bounded_by_the_conv_code_size(solver):
    y = torch.randn(1, 2, 4, 4, dtype=torch.float64)  # code (3, 4, 4): 48 entries
    _raises(lambda: SOLVERS[solver](_conv(), y, k=49), "k must be", "[1, 48]", "49")
    assert SOLVERS[solver](_conv(), y, k=48).shape == (1, 3, 4, 4)


# -------------------------------------------------------------- λ, threshold, tolerance, step size


@pytest.mark.parametrize("solver", ["ista", "fista"])
@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_bad_lambda(solver, lam):
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: SOLVERS[solver](_dense(), y, lam=lam), "lam", repr(lam))


@pytest.mark.parametrize("solver", ["ista", "fista"])
def test_per_atom_lambda_with_a_negative_entry_or_the_wrong_shape(solver):
    y = torch.randn(2, N, dtype=torch.float64)
    lam = torch.full((M,), 0.1, dtype=torch.float64)
    lam[3] = -1.0
    _raises(lambda: SOLVERS[solver](_dense(), y, lam=lam), "lam", "non-negative", f"({M},)")
    _raises(
        lambda: SOLVERS[solver](_dense(), y, lam=torch.ones(M + 1, dtype=torch.float64)),
        "lam must be a scalar or have shape (11,)",
        "(12,)",
    )


@pytest.mark.parametrize("threshold", [-0.5, float("nan")])
def test_bad_threshold(threshold):
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: thresholding(_dense(), y, threshold=threshold), "threshold", repr(threshold))
    per_atom = torch.zeros(M, dtype=torch.float64)
    per_atom[0] = threshold
    _raises(lambda: thresholding(_dense(), y, threshold=per_atom), "threshold", f"({M},)")
    _raises(
        lambda: thresholding(_dense(), y, threshold=torch.zeros(3, dtype=torch.float64)),
        "threshold must be a scalar or have shape (11,)",
        "(3,)",
    )


def test_threshold_and_k_are_exclusive_and_mode_is_checked():
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: thresholding(_dense(), y), "exactly one of threshold and k", "None")
    _raises(lambda: thresholding(_dense(), y, threshold=0.1, k=2), "threshold=0.1", "k=2")
    _raises(lambda: thresholding(_dense(), y, k=2, mode="relu"), "mode", "'relu'")


@pytest.mark.parametrize("solver", ["omp", "ista", "fista"])
@pytest.mark.parametrize("tol", [-1e-3, float("nan")])
def test_bad_tolerance(solver, tol):
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: SOLVERS[solver](_dense(), y, tol=tol), "tol", repr(tol))


def test_omp_needs_k_or_tol():
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: omp(_dense(), y), "k", "tol")
    assert omp(_dense(), y, tol=0.5).shape == (2, M)


@pytest.mark.parametrize("solver", [ista, fista])
@pytest.mark.parametrize("step", [0.0, -0.5, float("inf")])
def test_bad_step(solver, step):
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: solver(_dense(), y, 0.1, step=step), "step", repr(step))


@pytest.mark.parametrize("solver", [ista, fista])
def test_bad_max_iter(solver):
    y = torch.randn(2, N, dtype=torch.float64)
    _raises(lambda: solver(_dense(), y, 0.1, max_iter=-1), "max_iter", "-1")
    _raises(lambda: solver(_dense(), y, 0.1, max_iter=2.5), "max_iter", "2.5")


# -------------------------------------------------------------------- OMP on large conv problems


def test_omp_refuses_a_conv_problem_whose_explicit_matrix_is_too_large():
    conv = ConvDictionary(1, 8, 3)
    y = torch.randn(1, 1, 100, 100)
    message = _raises(lambda: omp(conv, y, k=5), "signals of shape (1, 100, 100)", "10000 × 76832")
    assert re.search(r"limit of 50,000,000", message)

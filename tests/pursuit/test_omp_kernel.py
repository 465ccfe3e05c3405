"""The compiled Batch-OMP kernel gives the tensor kernel's codes."""

from __future__ import annotations

import pytest
import torch

from mlcsc.pursuit.batch_omp import batch_omp

pytest.importorskip("numba")
pytestmark = pytest.mark.usefixtures("single_thread")


def _problem(n: int, m: int, batch: int, seed: int, dtype: torch.dtype):
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(n, m, dtype=torch.float64, generator=generator)
    matrix = matrix * (0.5 + torch.rand(m, dtype=torch.float64, generator=generator))
    signals = torch.randn(batch, n, dtype=torch.float64, generator=generator)
    signals[:2] = 0.0  # zero signals: no atom
    signals[2] = matrix[:, 3]  # one atom: exact after one step
    return matrix.to(dtype), signals.to(dtype)


@pytest.mark.parametrize(
    "n, m, k, tol",
    [
        (64, 256, 8, None),
        (20, 50, 25, None),  # k above n: capped, ends on exact fits and tiny pivots
        (16, 40, None, 0.5),
        (8, 8, 8, None),
        (12, 30, 5, 2.0),
    ],
)
def test_compiled_kernel_gives_the_tensor_kernels_codes_in_float64(n, m, k, tol):
    matrix, signals = _problem(n, m, 300, seed=n + m, dtype=torch.float64)
    tensor = batch_omp(matrix, signals, k, tol, compiled=False)
    compiled = batch_omp(matrix, signals, k, tol, compiled=True)
    assert compiled.indices.shape == tensor.indices.shape
    assert torch.equal(compiled.indices, tensor.indices)
    assert torch.equal(compiled.counts, tensor.counts)
    torch.testing.assert_close(compiled.values, tensor.values, rtol=1e-9, atol=1e-9)
    assert compiled.values.dtype == torch.float64


def test_compiled_kernel_in_float32_agrees_with_float64():
    matrix, signals = _problem(64, 256, 500, seed=1, dtype=torch.float64)
    exact = batch_omp(matrix, signals, 8, None, compiled=True)
    single = batch_omp(matrix.float(), signals.float(), 8, None, compiled=True)
    assert single.values.dtype == torch.float32
    assert (single.indices == exact.indices).all(1).float().mean() > 0.99
    dense = single.to_dense(256).double()
    torch.testing.assert_close(dense, exact.to_dense(256), rtol=1e-3, atol=1e-4)


def test_duplicate_atoms_are_never_chosen_together():
    matrix, signals = _problem(10, 20, 50, seed=3, dtype=torch.float64)
    matrix[:, 5] = 2.0 * matrix[:, 4]  # the same direction twice
    codes = batch_omp(matrix, signals, 10, None, compiled=True)
    chosen = codes.to_dense(20) != 0
    assert not (chosen[:, 4] & chosen[:, 5]).any()
    reference = batch_omp(matrix, signals, 10, None, compiled=False)
    assert torch.equal(codes.indices, reference.indices)


def test_empty_batch_and_thread_counts():
    matrix, signals = _problem(16, 32, 40, seed=4, dtype=torch.float64)
    empty = batch_omp(matrix, signals[:0], 4, None, compiled=True)
    assert empty.indices.shape[0] == 0 and empty.counts.shape == (0,)
    one = batch_omp(matrix, signals, 4, None, compiled=True)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the signals split over two threads: the same codes
        two = batch_omp(matrix, signals, 4, None, compiled=True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.indices, two.indices) and torch.equal(one.values, two.values)


def test_compiled_true_where_the_kernel_cannot_run_is_an_error():
    matrix, signals = _problem(8, 16, 4, seed=5, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="compiled OMP kernel needs"):
        batch_omp(matrix.half(), signals.half(), 2, None, compiled=True)

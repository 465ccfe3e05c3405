"""``torch.compile(model, fullgraph=True)`` works for every pursuit: the forward pass has no host
synchronisation and no data-dependent Python branch (input checks run on the device, the step
norms are tracked by sync-free Lanczos steps, OMP's greedy selection is one custom operator)."""

from __future__ import annotations

import pytest
import torch

from mlcsc import MLCSC
from mlcsc.nn.options import check_pursuit_options
from mlcsc.pursuit import PURSUITS, get_pursuit

LAYERS = [(4, 3, 2, 0), (8, 4, 1, 0)]  # 9×9 → 4×4 → 1×1, as the MNIST stack's last layer


def _supported():
    for pursuit in sorted(PURSUITS):
        for parametrization in ("normalized", "reference"):
            try:
                check_pursuit_options(get_pursuit(pursuit), parametrization, None, None, None)
            except ValueError:
                continue
            yield pursuit, parametrization


@pytest.mark.slow
@pytest.mark.parametrize(("pursuit", "parametrization"), list(_supported()))
def test_every_pursuit_compiles_to_one_graph_with_the_eager_result(pursuit, parametrization):
    torch.manual_seed(0)
    model = MLCSC(1, LAYERS, pursuit=pursuit, n_iter=2, parametrization=parametrization)
    x = torch.rand(3, 1, 9, 9)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)  # raises on any graph break
    model.eval()
    want = model(x)  # eager: estimates the step norms to convergence
    torch.testing.assert_close(compiled(x), want, rtol=1e-5, atol=1e-6)
    model.train()
    filters = list(model.dictionaries.parameters())
    eager_grads = torch.autograd.grad(model(x).square().sum(), filters)
    # training in the graph: one sync-free tracking step of the norms each call
    compiled_grads = torch.autograd.grad(compiled(x).square().sum(), filters)
    for got, expected in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_non_finite_input_is_refused_inside_a_compiled_graph():
    model = MLCSC(1, LAYERS, pursuit="ml_fista", n_iter=1).eval()
    x = torch.rand(2, 1, 9, 9)
    model(x)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    x[0, 0, 4, 4] = float("nan")
    with pytest.raises(RuntimeError, match="contains non-finite values"):
        compiled(x)

"""DenseDictionary and ConvDictionary: adjointness, sizes, Lipschitz constants, validation."""

from __future__ import annotations

import itertools

import pytest
import torch

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.effective_dictionary import EffectiveDictionary

pytestmark = pytest.mark.usefixtures("single_thread")


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum().detach())


def _explicit_gram(dictionary: ConvDictionary, input_size: tuple[int, int]) -> torch.Tensor:
    """``DᵀD`` as a matrix: synthesise every unit code vector, then take the Gram matrix."""
    code_size = dictionary.output_size(input_size)
    n = dictionary.num_atoms * code_size[0] * code_size[1]
    units = torch.eye(n, dtype=dictionary.weight.dtype).view(n, dictionary.num_atoms, *code_size)
    with torch.no_grad():
        columns = dictionary.synthesize(units, input_size).reshape(n, -1)  # row i: D e_i
    return columns @ columns.T


# ------------------------------------------------------------------------------------- adjointness

SIZES = [(13, 11), (12, 12), (9, 15)]


@pytest.mark.parametrize(
    ("stride", "padding", "size"), list(itertools.product([1, 2, 3], [0, 1, 2], SIZES))
)
def test_conv_synthesis_is_adjoint_of_analysis(stride, padding, size):
    dictionary = ConvDictionary(3, 5, 3, stride=stride, padding=padding).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    codes = torch.randn_like(dictionary.analyze(x))
    synthesized = dictionary.synthesize(codes, output_size=size)
    assert synthesized.shape == x.shape
    lhs = _inner(synthesized, x)
    rhs = _inner(codes, dictionary.analyze(x))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(4, 2, 1), (5, 3, 2), (2, 1, 0)])
def test_conv_adjointness_with_even_kernels_and_gradient_consistency(kernel, stride, padding):
    dictionary = ConvDictionary(2, 3, kernel, stride=stride, padding=padding).double()
    y = torch.randn(1, 2, 13, 11, dtype=torch.float64)
    codes = torch.randn_like(dictionary.analyze(y)).requires_grad_()
    # the library's gradient Dᵀ(DΓ − y) equals autograd's gradient of ½‖DΓ − y‖²
    loss = 0.5 * dictionary.residual(codes, y).pow(2).sum()
    (autograd,) = torch.autograd.grad(loss, codes)
    torch.testing.assert_close(dictionary.gradient(codes.detach(), y), autograd)


def test_dense_synthesis_is_adjoint_of_analysis():
    dictionary = DenseDictionary(torch.randn(13, 29, dtype=torch.float64))
    codes = torch.randn(4, 29, dtype=torch.float64)
    x = torch.randn(4, 13, dtype=torch.float64)
    assert _inner(dictionary.synthesize(codes), x) == pytest.approx(
        _inner(codes, dictionary.analyze(x)), rel=1e-12
    )
    torch.testing.assert_close(dictionary.synthesize(codes), codes @ dictionary.weight.T)
    torch.testing.assert_close(dictionary(codes), dictionary.synthesize(codes))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_synthesize_at_signal_size_reproduces_that_size(size, stride):
    dictionary = ConvDictionary(2, 4, 5, stride=stride, padding=1)
    x = torch.randn(1, 2, *size)
    codes = dictionary.analyze(x)
    assert dictionary.synthesize(codes, output_size=x.shape[-2:]).shape == x.shape
    assert dictionary.residual(codes, x).shape == x.shape
    assert tuple(codes.shape[-2:]) == dictionary.output_size(size)


# --------------------------------------------------------------------------------------- Lipschitz


def test_dense_lipschitz_is_squared_largest_singular_value():
    weight = torch.randn(11, 23, dtype=torch.float64)
    dictionary = DenseDictionary(weight)
    sigma = torch.linalg.svdvals(weight)[0]
    assert float(dictionary.lipschitz()) == pytest.approx(float(sigma**2), rel=1e-12)


@pytest.mark.parametrize(
    ("in_channels", "num_atoms", "kernel", "stride", "padding", "size"),
    [
        (2, 3, 3, 1, 0, (9, 8)),
        (2, 3, 3, 2, 1, (9, 8)),
        (1, 4, 5, 3, 2, (13, 11)),
        (3, 2, 3, 2, 0, (12, 12)),
    ],
)
def test_conv_lipschitz_matches_explicit_gram_matrix(
    in_channels, num_atoms, kernel, stride, padding, size
):
    dictionary = ConvDictionary(in_channels, num_atoms, kernel, stride, padding).double()
    top = float(torch.linalg.eigvalsh(_explicit_gram(dictionary, size))[-1])
    estimate = float(dictionary.lipschitz(size, warm_start=False))
    assert estimate == pytest.approx(top, rel=1e-3)
    # power iteration returns a Rayleigh quotient: never above λ_max
    assert estimate <= top * (1 + 1e-10)


def test_conv_lipschitz_without_size_bounds_every_size():
    dictionary = ConvDictionary(2, 3, 3, stride=2).double()
    bound = float(dictionary.lipschitz())
    # a certified bound, not an iteration: the iteration arguments do not change it
    assert float(dictionary.lipschitz(n_iter=2, warm_start=False)) == bound
    for size in [(3, 3), (13, 11), (40, 36)]:
        assert float(dictionary.lipschitz(size)) <= bound
    # and tight for large images
    assert float(dictionary.lipschitz((40, 36), n_iter=300, tol=0.0)) >= bound / 1.05


def test_conv_lipschitz_warm_start_refines_in_two_iterations():
    dictionary = ConvDictionary(2, 3, 3, stride=2).double()
    cold = float(dictionary.lipschitz((13, 11), warm_start=False))
    # a warm restart from the stored vector gives the same estimate in very few iterations
    warm = float(dictionary.lipschitz((13, 11), n_iter=2))
    assert warm == pytest.approx(cold, rel=1e-6)


def test_lipschitz_does_not_track_gradients():
    dictionary = ConvDictionary(1, 2, 3)
    value = dictionary.lipschitz((7, 7))
    assert not value.requires_grad
    assert value.ndim == 0


# ------------------------------------------------------------------------------------------- atoms


def test_conv_normalize_gives_unit_norm_atoms():
    dictionary = ConvDictionary(3, 4, 3)
    with torch.no_grad():
        dictionary.weight.mul_(torch.tensor([0.1, 2.0, 7.0, 0.5]).view(-1, 1, 1, 1))
    assert dictionary.normalize_() is dictionary
    torch.testing.assert_close(dictionary.atom_norms(), torch.ones(4))
    torch.testing.assert_close(dictionary.weight.flatten(1).norm(dim=1), torch.ones(4))


def test_dense_normalize_gives_unit_norm_columns_and_keeps_zero_atoms():
    weight = torch.randn(7, 5, dtype=torch.float64) * 3
    weight[:, 2] = 0
    dictionary = DenseDictionary(weight).normalize_()
    norms = dictionary.weight.norm(dim=0)
    torch.testing.assert_close(norms, torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64))


def test_conv_dictionary_initial_atoms_have_unit_norm():
    dictionary = ConvDictionary(2, 6, 5)
    torch.testing.assert_close(dictionary.atom_norms(), torch.ones(6))


def test_molecule_norms_are_those_of_whole_molecules_not_of_ones_cropped_at_the_border():
    torch.manual_seed(0)
    first = ConvDictionary(1, 4, 3, padding=1).double()
    second = ConvDictionary(4, 6, 3, stride=2, padding=1).double()
    # one layer: the atoms themselves (at code position (0, 0) padding crops 5 of their 9 taps)
    single = EffectiveDictionary([first], [(9, 9)])
    torch.testing.assert_close(single.atom_norms(), first.atom_norms())
    # two layers: the columns of D₁D₂ at the centre of the 5×5 code grid, which nothing crops
    stack = EffectiveDictionary([first, second], [(9, 9), (9, 9)])
    assert stack.code_size() == (5, 5)
    columns = stack.matrix().view(81, 6, 5, 5)[:, :, 2, 2]  # (pixels, atoms)
    torch.testing.assert_close(stack.atom_norms(), columns.norm(dim=0).detach())
    corner = stack.matrix().view(81, 6, 5, 5)[:, :, 0, 0].norm(dim=0)
    assert (corner < stack.atom_norms() - 1e-3).all()  # cropped at the border
    # a dense stack: the norms of the product's columns
    outer, inner = torch.randn(7, 5, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    chain = EffectiveDictionary([DenseDictionary(outer), DenseDictionary(inner)], [None, None])
    torch.testing.assert_close(chain.atom_norms(), (outer @ inner).norm(dim=0))


def test_conv_dictionary_attributes_and_weight_shape():
    dictionary = ConvDictionary(3, 7, 5, stride=2, padding=1)
    assert dictionary.stride == 2
    assert dictionary.padding == 1
    assert dictionary.kernel_size == 5
    assert dictionary.in_channels == 3
    assert dictionary.num_atoms == 7
    assert tuple(dictionary.weight.shape) == (7, 3, 5, 5)
    assert isinstance(dictionary.weight, torch.nn.Parameter)
    assert "stride=2" in repr(dictionary)


def test_dense_dictionary_properties_and_integer_weights():
    dictionary = DenseDictionary(torch.arange(12).view(3, 4))
    assert dictionary.signal_dim == 3
    assert dictionary.num_atoms == 4
    assert dictionary.weight.is_floating_point()


# -------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"stride": 0}, "stride"),
        ({"stride": -1}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"stride": True}, "stride"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": 3.0}, "kernel_size"),
        ({"padding": -1}, "padding"),
        ({"padding": 0.5}, "padding"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_atoms": "4"}, "num_atoms"),
    ],
)
def test_conv_dictionary_rejects_bad_arguments_by_name(kwargs, name):
    arguments = {"in_channels": 1, "num_atoms": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        ConvDictionary(**arguments)


def test_dense_dictionary_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"\(n, m\).*\(2, 3, 4\)"):
        DenseDictionary(torch.randn(2, 3, 4))
    weight = torch.randn(3, 4)
    weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        DenseDictionary(weight)


def test_conv_lipschitz_rejects_too_small_input():
    dictionary = ConvDictionary(1, 2, 5)
    with pytest.raises(ValueError, match="smaller than"):
        dictionary.lipschitz((3, 3))


def test_tracking_the_norm_keeps_a_converged_estimate():
    # the sync-free step a training forward takes: from a converged vector it must stay at the
    # norm (in float32 the residual of that vector is rounding noise, which must not leak in)
    torch.manual_seed(0)
    dictionary = ConvDictionary(4, 8, 4)
    converged = float(dictionary.lipschitz(input_size=(4, 4)))
    tracked = [float(dictionary.track_lipschitz((4, 4))) for _ in range(20)]
    assert max(abs(t - converged) for t in tracked) <= 1e-4 * converged
    with torch.no_grad():
        dictionary.weight.mul_(1.01)  # the atoms moved: the next step follows them
    assert float(dictionary.track_lipschitz((4, 4))) == pytest.approx(1.0201 * converged, rel=1e-4)

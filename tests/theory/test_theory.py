"""Mutual coherence, the Welch bound and the local norms (mlcsc.theory)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlcsc import ConvDictionary, DenseDictionary
from mlcsc.theory import l0_inf_norm, l2_inf_norm, mutual_coherence, stripe_width, welch_bound

pytestmark = pytest.mark.usefixtures("single_thread")


def _brute_force_coherence(weight: torch.Tensor) -> float:
    columns = [weight[:, j] for j in range(weight.shape[1])]
    best = 0.0
    for i, a in enumerate(columns):
        for j, b in enumerate(columns):
            if i != j:
                best = max(best, abs(float(a @ b)) / (float(a.norm()) * float(b.norm())))
    return best


def test_mutual_coherence_equals_brute_force_double_loop():
    weight = torch.randn(7, 11, dtype=torch.float64) * torch.rand(11, dtype=torch.float64)
    expected = _brute_force_coherence(weight)
    assert float(mutual_coherence(weight)) == pytest.approx(expected, rel=1e-12)
    dictionary = DenseDictionary(weight)
    assert float(mutual_coherence(dictionary)) == pytest.approx(expected, rel=1e-12)
    assert float(dictionary.mutual_coherence()) == pytest.approx(expected, rel=1e-12)


def test_mutual_coherence_of_identity_is_zero_and_of_repeated_atom_is_one():
    assert float(mutual_coherence(torch.eye(9, dtype=torch.float64))) == 0.0
    weight = torch.randn(5, 4, dtype=torch.float64)
    weight[:, 3] = -2.5 * weight[:, 1]
    assert float(mutual_coherence(weight)) == pytest.approx(1.0, rel=1e-12)


def test_mutual_coherence_of_two_orthobases_is_one_over_root_n():
    n = 8  # identity and a normalised Hadamard matrix: μ = 1/√n
    hadamard = torch.ones(1, 1, dtype=torch.float64)
    while hadamard.shape[0] < n:
        hadamard = torch.cat(
            [torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)]
        )
    weight = torch.cat([torch.eye(n, dtype=torch.float64), hadamard / math.sqrt(n)], dim=1)
    assert float(mutual_coherence(weight)) == pytest.approx(1 / math.sqrt(n), rel=1e-12)


@pytest.mark.parametrize(("n", "m"), [(5, 9), (7, 13), (13, 41), (16, 64)])
def test_welch_bound_is_below_the_coherence_of_random_unit_norm_dictionaries(n, m):
    generator = torch.Generator().manual_seed(n * m)
    for _ in range(5):
        weight = torch.randn(n, m, dtype=torch.float64, generator=generator)
        weight = weight / weight.norm(dim=0)
        assert welch_bound(n, m) <= float(mutual_coherence(weight))


def test_welch_bound_formula_and_edge_cases():
    assert welch_bound(64, 256) == pytest.approx(math.sqrt(192 / (64 * 255)))
    assert welch_bound(5, 5) == 0.0
    assert welch_bound(5, 3) == 0.0
    for n, m in [(0, 3), (3, 0), (-1, 4)]:
        with pytest.raises(ValueError, match="positive"):
            welch_bound(n, m)


def test_all_zero_atom_raises_naming_its_column():
    weight = torch.randn(6, 5, dtype=torch.float64)
    weight[:, 3] = 0
    with pytest.raises(ValueError, match=r"all-zero atoms at columns \[3\]"):
        mutual_coherence(weight)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(n, m\) matrix.*got shape \(2, 3, 4, 5, 6\)"):
        mutual_coherence(torch.randn(2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="at least 2 atoms, got 1"):
        mutual_coherence(torch.randn(5, 1))


# ------------------------------------------------------------------ convolutional coherence
def _explicit_conv_matrix(dictionary: ConvDictionary, grid: int) -> torch.Tensor:
    """Columns of the global CSC matrix: every atom at every position of a grid × grid code."""
    m = dictionary.num_atoms
    units = torch.eye(m * grid * grid, dtype=torch.float64).view(-1, m, grid, grid)
    with torch.no_grad():
        return dictionary.synthesize(units).flatten(1).T  # (pixels, columns)


def _brute_force_conv_coherence(dictionary: ConvDictionary, grid: int) -> float:
    """μ over the interior columns (atoms not cropped by the padding) of the explicit matrix."""
    columns = _explicit_conv_matrix(dictionary, grid)
    norms = columns.norm(dim=0)
    full = dictionary.atom_norms().detach().repeat_interleave(grid * grid)
    interior = (norms - full).abs() < 1e-12
    unit = columns[:, interior] / norms[interior]
    gram = (unit.T @ unit).abs()
    gram.fill_diagonal_(0)
    return float(gram.max())


def _conv_dictionary(in_channels, num_atoms, k, stride=1, padding=0, seed=0) -> ConvDictionary:
    dictionary = ConvDictionary(in_channels, num_atoms, k, stride, padding).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dictionary.weight.copy_(
            torch.randn(dictionary.weight.shape, generator=generator, dtype=torch.float64)
        )
    return dictionary


@pytest.mark.parametrize(
    ("in_channels", "num_atoms", "k", "stride"),
    [(1, 3, 4, 1), (1, 2, 5, 2), (2, 3, 4, 2), (3, 2, 5, 3), (2, 4, 3, 1), (1, 1, 5, 2)],
)
def test_conv_coherence_equals_brute_force_on_the_explicit_matrix(
    in_channels, num_atoms, k, stride
):
    dictionary = _conv_dictionary(in_channels, num_atoms, k, stride, seed=num_atoms * k + stride)
    # unnormalised atoms: the coherence normalises them
    with torch.no_grad():
        dictionary.weight.mul_(torch.tensor([0.5, 2.0, 3.0, 1.0][:num_atoms]).view(-1, 1, 1, 1))
    grid = 2 * ((k - 1) // stride) + 3  # every neighbour of the centre atom is on the grid
    expected = _brute_force_conv_coherence(dictionary, grid)
    assert expected > 0
    assert float(mutual_coherence(dictionary)) == pytest.approx(expected, rel=1e-12)
    weight = dictionary.weight.detach()
    assert float(mutual_coherence(weight, stride=stride)) == pytest.approx(expected, rel=1e-12)


def test_conv_coherence_ignores_atoms_cropped_by_padding():
    dictionary = _conv_dictionary(2, 3, 5, stride=2, padding=2, seed=3)
    expected = _brute_force_conv_coherence(dictionary, grid=9)
    assert float(mutual_coherence(dictionary)) == pytest.approx(expected, rel=1e-12)


def _brute_force_coherence_of_explicit_columns(columns: torch.Tensor) -> float:
    """μ of an explicit matrix: the largest |cos| between two distinct columns."""
    unit = columns / columns.norm(dim=0)
    gram = (unit.T @ unit).abs()
    gram.fill_diagonal_(0)
    return float(gram.max())


def _explicit_strided_columns(weight: torch.Tensor, stride: int, grid: int) -> torch.Tensor:
    """Every filter at every position of the code grid, with no cropping (all atoms whole).

    1-D banks ``(m, c, k)`` use ``conv_transpose1d`` on a ``grid``-long code; 2-D banks use
    ``conv_transpose2d`` with the stride on *both* axes, on a ``grid × grid`` code, so that atoms
    on different rows (or columns) are in the matrix too, even where they cannot overlap.
    """
    m = weight.shape[0]
    if weight.ndim == 3:
        units = torch.eye(m * grid, dtype=torch.float64).view(-1, m, grid)
        return F.conv_transpose1d(units, weight, stride=stride).flatten(1).T
    units = torch.eye(m * grid * grid, dtype=torch.float64).view(-1, m, grid, grid)
    return F.conv_transpose2d(units, weight, stride=stride).flatten(1).T


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("num_atoms", [1, 3])
def test_conv_coherence_of_one_dimensional_and_thin_filters_equals_brute_force(num_atoms, stride):
    # 1-D filters of width k = 5, as (m, c, k) and embedded in 2-D as a row (m, c, 1, k) or a
    # column (m, c, k, 1) filter: three banks of one-pixel-thick atoms whose shifts overlap on
    # one axis only. The stride of the code grid applies along the signal for the 1-D bank and
    # along both axes for the 2-D ones; either way only lags τ ∈ sℤ with |τ| ≤ k − 1 along the
    # filter can overlap, so all three must have the coherence of the explicit matrix of the
    # 1-D operator. One atom: μ comes from its own shifts alone (0 once s ≥ k); three atoms:
    # cross-correlations at every admissible lag as well.
    generator = torch.Generator().manual_seed(100 * num_atoms + stride)
    weight = torch.randn(num_atoms, 2, 5, generator=generator, dtype=torch.float64)
    grid = 7  # (grid − 1)·s ≥ k − 1: every overlapping lag occurs between two columns
    layouts = {"1-D": weight, "row": weight.unsqueeze(2), "column": weight.unsqueeze(3)}
    reference = _brute_force_coherence_of_explicit_columns(
        _explicit_strided_columns(weight, stride, grid)
    )
    for name, bank in layouts.items():
        explicit = _brute_force_coherence_of_explicit_columns(
            _explicit_strided_columns(bank, stride, grid)
        )
        assert explicit == pytest.approx(reference, rel=1e-12, abs=1e-15), name
        got = float(mutual_coherence(bank, stride=stride))
        assert got == pytest.approx(reference, rel=1e-12, abs=1e-15), name
    if num_atoms == 1 and stride >= 5:
        assert reference == pytest.approx(0.0, abs=1e-15)  # the shifts never overlap
    else:
        assert reference > 0


def test_conv_coherence_of_a_box_filter_is_its_overlap():
    box = torch.ones(1, 1, 3, dtype=torch.float64)  # 1-D box of width 3
    assert float(mutual_coherence(box, stride=1)) == pytest.approx(2 / 3)  # shift by 1
    assert float(mutual_coherence(box, stride=2)) == pytest.approx(1 / 3)  # shift by 2
    assert float(mutual_coherence(box, stride=3)) == 0.0  # shifts never overlap
    square = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    assert float(mutual_coherence(square, stride=1)) == pytest.approx(1 / 2)
    twins = torch.cat([square, -2 * square])
    assert float(mutual_coherence(twins, stride=2)) == pytest.approx(1.0)


def test_conv_coherence_in_blocks_matches_one_block(monkeypatch):
    import mlcsc.theory.coherence as coherence

    dictionary = _conv_dictionary(2, 7, 3, stride=1, seed=11)
    whole = float(mutual_coherence(dictionary))
    monkeypatch.setattr(coherence, "_BLOCK_ELEMENTS", 60)  # two atoms per block
    assert float(mutual_coherence(dictionary)) == pytest.approx(whole, rel=1e-12)


def test_conv_coherence_errors():
    dictionary = _conv_dictionary(1, 2, 3, stride=2)
    with pytest.raises(ValueError, match="stride=1 conflicts with the dictionary's own stride 2"):
        mutual_coherence(dictionary, stride=1)
    assert float(mutual_coherence(dictionary, stride=2)) == float(mutual_coherence(dictionary))
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        mutual_coherence(torch.randn(2, 1, 3, 3), stride=0)
    with pytest.raises(ValueError, match="stride is for convolutional dictionaries"):
        mutual_coherence(torch.randn(4, 6), stride=2)
    weight = torch.randn(3, 1, 3, 3)
    weight[1] = 0
    with pytest.raises(ValueError, match=r"all-zero filters at indices \[1\]"):
        mutual_coherence(weight)


# ------------------------------------------------------------------ ℓ0,∞ and ℓ2,∞ norms
def _random_codes(shape, density, seed) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values * (torch.rand(shape, generator=generator, dtype=torch.float64) < density)


def _overlaps(code_positions: torch.Tensor, start: int, k: int, s: int) -> torch.Tensor:
    """Code positions whose atom (pixels ps … ps + k − 1) overlaps pixels start … start + k − 1."""
    return (code_positions * s <= start + k - 1) & (code_positions * s + k - 1 >= start)


def _brute_stripe_norm(codes: torch.Tensor, k: int, s: int) -> list[int]:
    """Max over every k-patch of the signal D Γ of the non-zeros whose atoms touch it."""
    codes = codes if codes.ndim == 4 else codes.unsqueeze(2)
    one_dimensional = codes.shape[2] == 1
    height, width = codes.shape[-2:]
    kh = 1 if one_dimensional else k
    sh = 1 if one_dimensional else s
    signal_h, signal_w = (height - 1) * sh + kh, (width - 1) * s + k
    rows, cols = torch.arange(height), torch.arange(width)
    result = []
    for code in codes:
        nonzero = code != 0
        best = 0
        for top in range(signal_h - kh + 1):
            for left in range(signal_w - k + 1):
                window = _overlaps(rows, top, kh, sh).view(-1, 1) & _overlaps(cols, left, k, s)
                best = max(best, int((nonzero & window).sum()))
        result.append(best)
    return result


def _brute_patch_norm(codes: torch.Tensor, k: int) -> list[int]:
    codes = codes if codes.ndim == 4 else codes.unsqueeze(2)
    kh = 1 if codes.shape[2] == 1 else k
    height, width = codes.shape[-2:]
    result = []
    for code in codes:
        nonzero = code != 0
        counts = [
            int(nonzero[:, top : top + kh, left : left + k].sum())
            for top in range(max(height - kh, 0) + 1)
            for left in range(max(width - k, 0) + 1)
        ]
        result.append(max(counts))
    return result


def _brute_l2_inf(signal: torch.Tensor, p: int) -> list[float]:
    signal = signal if signal.ndim == 4 else signal.unsqueeze(2)
    ph = 1 if signal.shape[2] == 1 else p
    height, width = signal.shape[-2:]
    return [
        max(
            float(x[:, top : top + ph, left : left + p].norm())
            for top in range(max(height - ph, 0) + 1)
            for left in range(max(width - p, 0) + 1)
        )
        for x in signal
    ]


@pytest.mark.parametrize(
    ("shape", "k", "stride"),
    [
        ((3, 2, 9, 8), 3, 1),
        ((3, 3, 7, 7), 4, 2),
        ((2, 1, 6, 9), 5, 3),
        ((3, 2, 2, 3), 5, 1),  # code grid smaller than a stripe
        ((3, 2, 17), 3, 1),  # 1-D
        ((3, 4, 13), 5, 2),
        ((2, 1, 11), 4, 3),
    ],
)
def test_stripe_norm_equals_brute_force_over_signal_patches(shape, k, stride):
    for seed, density in enumerate((0.1, 0.3, 0.7)):
        codes = _random_codes(shape, density, seed)
        expected = _brute_stripe_norm(codes, k, stride)
        got = l0_inf_norm(codes, k, stride)
        assert got.dtype == torch.int64 and got.shape == (shape[0],)
        assert got.tolist() == expected


@pytest.mark.parametrize(
    ("shape", "k"), [((3, 2, 9, 8), 3), ((2, 3, 6, 6), 4), ((3, 2, 2, 3), 4), ((3, 3, 15), 5)]
)
def test_patch_norm_equals_brute_force_over_code_windows(shape, k):
    for seed, density in enumerate((0.1, 0.4)):
        codes = _random_codes(shape, density, 10 + seed)
        assert l0_inf_norm(codes, k, mode="patch").tolist() == _brute_patch_norm(codes, k)


@pytest.mark.parametrize(
    ("shape", "p"), [((3, 1, 8, 9), 3), ((2, 3, 7, 7), 4), ((2, 2, 3, 2), 5), ((3, 2, 14), 4)]
)
def test_l2_inf_norm_equals_brute_force_over_patches(shape, p):
    signal = torch.randn(shape, dtype=torch.float64)
    assert l2_inf_norm(signal, p).tolist() == pytest.approx(_brute_l2_inf(signal, p), rel=1e-12)


def test_norms_accept_a_conv_dictionary_and_a_tolerance():
    dictionary = ConvDictionary(2, 3, 4, stride=2)
    codes = _random_codes((2, 3, 6, 6), 0.3, 4)
    assert torch.equal(l0_inf_norm(codes, dictionary), l0_inf_norm(codes, 4, 2))
    signal = torch.randn(2, 2, 9, 9)
    assert torch.equal(l2_inf_norm(signal, dictionary), l2_inf_norm(signal, 4))
    small = codes * 1e-9
    assert l0_inf_norm(small, 4, 2, tol=1e-6).tolist() == [0, 0]
    with pytest.raises(ValueError, match="conflicts with the dictionary's own stride 2"):
        l0_inf_norm(codes, dictionary, 1)


def test_stripe_width_and_a_single_isolated_atom():
    assert [stripe_width(k, s) for k, s in [(3, 1), (7, 2), (5, 3), (2, 4), (1, 1)]] == [
        5,
        7,
        3,
        1,
        1,
    ]
    codes = torch.zeros(1, 2, 10, 10)
    codes[0, 1, 4, 4] = 1.0
    codes[0, 0, 4, 8] = 1.0  # 4 code positions (= 4 pixels) apart: in one stripe for k = 3
    assert l0_inf_norm(codes, 3).item() == 2
    assert l0_inf_norm(codes, 2).item() == 1  # k = 2: stripes are 3 wide
    assert l0_inf_norm(codes, 3, mode="patch").item() == 1


def test_l2_inf_norm_is_differentiable():
    signal = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    l2_inf_norm(signal, 3).sum().backward()
    assert signal.grad is not None and torch.isfinite(signal.grad).all()


def test_norm_errors():
    with pytest.raises(ValueError, match="mode must be one of stripe, patch; got 'row'"):
        l0_inf_norm(torch.zeros(1, 1, 4, 4), 3, mode="row")
    with pytest.raises(ValueError, match=r"codes must have shape \(B, C, N\) or \(B, C, H, W\)"):
        l0_inf_norm(torch.zeros(4, 4), 3)
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 1"):
        l0_inf_norm(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="patch_size must be an integer >= 1"):
        l2_inf_norm(torch.zeros(1, 1, 4, 4), 2.5)
    with pytest.raises(ValueError, match="tol must be a number >= 0"):
        l0_inf_norm(torch.zeros(1, 1, 4, 4), 3, tol=-1)

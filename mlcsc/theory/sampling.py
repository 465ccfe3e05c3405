"""Draw signals from the generative models: Sparseland, CSC and ML-CSC (MODEL.md §1–3).

Each sampler returns the signals *and* the codes that generated them, so that pursuits can be
scored against the truth and the guarantees of :mod:`mlcsc.theory.guarantees` checked:

* :func:`sparseland_signals`: ``y = DΓ + v`` with exactly ``k`` non-zeros per code;
* :func:`csc_signals`: ``Y = DΓ + E`` with ``‖Γ‖₀,∞^S`` at most a given value (Papyan, Sulam &
  Elad 2017, IEEE TSP) and noise of a given ``‖E‖₂,∞^P``;
* :func:`mlcsc_signals`: ``X = D₁Γ₁``, ``Γ_{i−1} = D_iΓ_i``, from a sparse, non-negative
  deepest code; the intermediate codes are sparse when the filters are
  (:func:`sparsify_filters_`, as in Sulam, Papyan, Romano & Elad 2018, IEEE TSP).

All randomness comes from the ``generator`` argument (torch's global generator when ``None``),
so a seeded generator reproduces the draw exactly. Numbers are drawn on the generator's device
in the dictionary's dtype and moved to the dictionary's device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_int, check_number
from mlcsc.theory.norms import l2_inf_norm, stripe_width

__all__ = ["sparseland_signals", "csc_signals", "mlcsc_signals", "sparsify_filters_"]


# ---------------------------------------------------------------------------------- validation
def _check_range(name: str, value) -> tuple[float, float]:
    message = f"{name} must be a pair (low, high) of finite numbers with 0 < low <= high"
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{message}, got {value!r}") from None
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"{message}, got {value!r}")
    return low, high


def _check_size(name: str, value) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    ok = isinstance(value, Sequence) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        raise ValueError(f"{name} must be a positive integer or a pair (H, W), got {value!r}")
    return int(value[0]), int(value[1])


# ---------------------------------------------------------------------------------- random draws
def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _rand(shape, generator, dtype) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=dtype, device=_draw_device(generator))


def _randn(shape, generator, dtype) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype, device=_draw_device(generator))


def _values(mask: Tensor, coefficient_range, nonnegative: bool, generator, dtype) -> Tensor:
    """Random magnitudes in ``coefficient_range`` with random signs on ``mask``, zero elsewhere."""
    low, high = coefficient_range
    magnitude = low + (high - low) * _rand(mask.shape, generator, dtype)
    if not nonnegative:
        sign = _rand(mask.shape, generator, dtype) < 0.5
        magnitude = torch.where(sign, -magnitude, magnitude)
    return torch.where(mask, magnitude, torch.zeros((), dtype=dtype, device=mask.device))


def _exact_support(num_signals: int, size: int, cardinality: int, generator) -> Tensor:
    """``(B, size)`` bool masks with exactly ``cardinality`` entries, uniformly at random."""
    order = _rand((num_signals, size), generator, torch.float64).argsort(dim=1)
    mask = torch.zeros(num_signals, size, dtype=torch.bool, device=order.device)
    mask.scatter_(1, order[:, :cardinality], True)
    return mask


def _patch_noise(shape, level: float, patch, generator, dtype) -> Tensor:
    """Gaussian noise rescaled so that every signal's ``‖E‖₂,∞^P`` equals ``level``."""
    if level == 0:
        return torch.zeros(shape, dtype=dtype, device=_draw_device(generator))
    noise = _randn(shape, generator, dtype)
    energy = l2_inf_norm(noise, patch).view(-1, *([1] * (len(shape) - 1)))
    return noise * (level / energy)


# ---------------------------------------------------------------------------------- Sparseland
@torch.no_grad()
def sparseland_signals(
    dictionary,
    num_signals: int,
    cardinality: int,
    noise_std: float = 0.0,
    coefficient_range: tuple[float, float] = (1.0, 2.0),
    generator: torch.Generator | None = None,
    *,
    nonnegative: bool = False,
) -> tuple[Tensor, Tensor]:
    """Draw Sparseland signals ``y = DΓ + v`` (MODEL.md §1).

    Every code has exactly ``cardinality`` non-zeros on a support drawn uniformly at random,
    with magnitudes uniform in ``coefficient_range`` and random signs (unless ``nonnegative``);
    ``v`` is white Gaussian noise of standard deviation ``noise_std`` per entry.

    Args:
        dictionary: a :class:`~mlcsc.DenseDictionary` or an ``(n, m)`` matrix (atoms as columns).
        num_signals: ``B ≥ 1``.
        cardinality: ``‖Γ‖₀`` of every code, ``0 ≤ k ≤ m``.
        noise_std: standard deviation ``σ ≥ 0`` of the additive noise.
        coefficient_range: ``(low, high)`` with ``0 < low ≤ high``: magnitudes of the non-zeros.
        generator: source of randomness (``None``: torch's global generator).
        nonnegative: draw positive coefficients only.

    Returns:
        ``(signals, codes)``.

    Raises:
        ValueError: naming the argument, what was expected and what was given.

    Shape:
        signals ``(B, n)``, codes ``(B, m)``.

    The Sparseland model of Bruckstein, Donoho & Elad (2009, SIAM Review), whose recovery
    guarantees (Donoho & Elad 2003; Tropp 2004; Donoho, Elad & Temlyakov 2006) are checked by
    :func:`~mlcsc.theory.exact_recovery_guarantee` and
    :func:`~mlcsc.theory.noisy_bp_guarantee`.

    Examples:
        >>> generator = torch.Generator().manual_seed(0)
        >>> signals, codes = sparseland_signals(torch.randn(16, 32), 5, 3, generator=generator)
        >>> signals.shape, codes.shape, (codes != 0).sum(dim=1).tolist()
        (torch.Size([5, 16]), torch.Size([5, 32]), [3, 3, 3, 3, 3])
    """
    weight = getattr(dictionary, "weight", dictionary)
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"dictionary must be a DenseDictionary or an (n, m) matrix, got {shape}")
    weight = weight.detach()
    n, m = weight.shape
    num_signals = check_int("num_signals", num_signals, 1)
    cardinality = check_int("cardinality", cardinality, 0, m, f" (the number of atoms m = {m})")
    noise_std = check_number("noise_std", noise_std, 0.0)
    coefficient_range = _check_range("coefficient_range", coefficient_range)
    dtype = weight.dtype
    mask = _exact_support(num_signals, m, cardinality, generator)
    codes = _values(mask, coefficient_range, nonnegative, generator, dtype).to(weight.device)
    signals = codes @ weight.T
    if noise_std > 0:
        signals = signals + noise_std * _randn((num_signals, n), generator, dtype).to(weight.device)
    return signals, codes


# ---------------------------------------------------------------------------------- CSC
def _stripe_limited_support(
    num_signals: int,
    num_atoms: int,
    code_size: tuple[int, int],
    window: tuple[int, int],
    limit: int,
    target: int | None,
    generator,
    chunk: int = 256,
) -> Tensor:
    """Greedy random supports with at most ``limit`` non-zeros in every ``window`` of codes.

    Candidates (atom, position) are visited in a random order per signal; one is accepted when
    every stripe window containing its position still holds fewer than ``limit`` non-zeros
    (and fewer than ``target`` were placed). Without a target the codes are maximal: no entry
    can be added. A position, once some window containing it is full, stays blocked; so each
    block of ``chunk`` candidates is first screened against the blocked map (one max-pooling)
    and only the survivors are visited one by one, all signals advancing together.
    """
    height, width = code_size
    wh, ww = window
    positions = height * width
    candidates = num_atoms * positions
    order = _rand((num_signals, candidates), generator, torch.float64).argsort(dim=1).cpu()
    # counts[b, a, c]: non-zeros in the window whose top-left code position is (a − wh + 1,
    # c − ww + 1); the windows containing position (y, x) are counts[b, y:y+wh, x:x+ww]
    counts = torch.zeros(num_signals, height + wh - 1, width + ww - 1)
    accepted = torch.zeros(num_signals, candidates, dtype=torch.bool)
    placed = torch.zeros(num_signals, dtype=torch.int64)
    signals = torch.arange(num_signals)
    batch = signals.view(-1, 1, 1).expand(-1, wh, ww)
    dy = torch.arange(wh).view(1, -1, 1)
    dx = torch.arange(ww).view(1, 1, -1)
    budget = torch.full_like(placed, candidates if target is None else target)
    for start in range(0, candidates, chunk):
        # fullest window containing each position: (B, height, width)
        fullest = F.max_pool2d(counts.unsqueeze(1), (wh, ww), stride=1).squeeze(1)
        if bool((fullest >= limit).all()) or bool((placed >= budget).all()):
            break  # saturated, or every code has its non-zeros
        block = order[:, start : start + chunk]
        free = fullest.flatten(1).gather(1, block % positions) < limit
        survivors = free.sum(dim=1)
        steps = int(survivors.max())
        if steps == 0:
            continue
        # the free candidates of every signal first, in their random order
        first = torch.sort((~free).to(torch.uint8), dim=1, stable=True).indices[:, :steps]
        selected = block.gather(1, first)
        valid = torch.arange(steps).view(1, -1) < survivors.view(-1, 1)
        for t in range(steps):
            candidate = selected[:, t]
            rows = (((candidate % positions) // width).view(-1, 1, 1) + dy).expand(-1, wh, ww)
            cols = ((candidate % width).view(-1, 1, 1) + dx).expand(-1, wh, ww)
            ok = counts[batch, rows, cols].flatten(1).amax(dim=1) < limit
            ok &= valid[:, t] & (placed < budget)
            counts.index_put_(
                (batch, rows, cols),
                ok.to(counts.dtype).view(-1, 1, 1).expand(-1, wh, ww),
                accumulate=True,
            )
            accepted[signals, candidate] |= ok
            placed += ok
    return accepted.view(num_signals, num_atoms, height, width)


@torch.no_grad()
def csc_signals(
    dictionary,
    num_signals: int,
    image_size: int | tuple[int, int],
    l0_inf: int,
    *,
    num_nonzeros: int | None = None,
    coefficient_range: tuple[float, float] = (1.0, 2.0),
    nonnegative: bool = False,
    noise_l2_inf: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw convolutional sparse signals ``Y = DΓ + E`` with ``‖Γ‖₀,∞^S ≤ l0_inf`` (MODEL.md §2).

    Supports are placed greedily in a random order: an entry (any atom, any position) is kept
    when no stripe containing it (a window of :func:`~mlcsc.theory.stripe_width` code positions
    per axis, all channels) would exceed ``l0_inf`` non-zeros, so the codes are locally sparse
    in the sense of Papyan, Sulam & Elad (2017, IEEE TSP) however large the image. Without
    ``num_nonzeros`` the codes are maximal (no entry can be added), which usually makes the
    stripe norm equal to ``l0_inf``. Magnitudes are uniform in ``coefficient_range`` with random
    signs. The noise ``E`` is Gaussian, rescaled per signal so that its ``‖E‖₂,∞^P`` in
    ``k × k`` patches equals ``noise_l2_inf``.

    Args:
        dictionary: a :class:`~mlcsc.ConvDictionary`.
        num_signals: ``B ≥ 1``.
        image_size: ``(H, W)`` (or ``H`` for square images) of the signals.
        l0_inf: largest stripe norm ``‖Γ‖₀,∞^S ≥ 1``.
        num_nonzeros: stop after this many non-zeros per code (fewer when the limit allows no
            more); default: fill until no entry fits.
        coefficient_range: ``(low, high)`` with ``0 < low ≤ high``.
        nonnegative: draw positive coefficients only.
        noise_l2_inf: ``‖E‖₂,∞^P ≥ 0`` of the additive noise.
        generator: source of randomness.

    Returns:
        ``(signals, codes)``; the clean signals are ``dictionary.synthesize(codes, image_size)``.

    Raises:
        ValueError: naming the argument, what was expected and what was given.

    Shape:
        signals ``(B, c, H, W)``, codes ``(B, m, H', W')`` with ``(H', W') =
        dictionary.output_size(image_size)``.

    Examples:
        Stripes of ``⌈(2·4 − 1)/2⌉ = 4 × 4`` code positions hold at most 3 non-zeros, and the
        noise has ``‖E‖₂,∞^P = 0.1`` in ``4 × 4`` patches:

        >>> from mlcsc import ConvDictionary
        >>> from mlcsc.theory import l0_inf_norm, l2_inf_norm
        >>> D = ConvDictionary(in_channels=3, num_atoms=8, kernel_size=4, stride=2)
        >>> generator = torch.Generator().manual_seed(0)
        >>> signals, codes = csc_signals(D, 2, 16, l0_inf=3, noise_l2_inf=0.1, generator=generator)
        >>> signals.shape, codes.shape, bool((l0_inf_norm(codes, D) <= 3).all())
        (torch.Size([2, 3, 16, 16]), torch.Size([2, 8, 7, 7]), True)
        >>> noise = signals - D.synthesize(codes, (16, 16))
        >>> [round(level, 4) for level in l2_inf_norm(noise, 4).tolist()]
        [0.1, 0.1]

        ``num_nonzeros`` stops early:

        >>> signals, codes = csc_signals(D, 2, 16, l0_inf=3, num_nonzeros=4, generator=generator)
        >>> (codes != 0).sum(dim=(1, 2, 3)).tolist()
        [4, 4]
    """
    if not all(hasattr(dictionary, a) for a in ("kernel_size", "stride", "num_atoms", "weight")):
        raise ValueError(f"dictionary must be a ConvDictionary, got {type(dictionary).__name__}")
    num_signals = check_int("num_signals", num_signals, 1)
    image_size = _check_size("image_size", image_size)
    l0_inf = check_int("l0_inf", l0_inf, 1)
    code_size = dictionary.output_size(image_size)
    if min(code_size) < 1:
        raise ValueError(
            f"image_size {image_size} is too small for {dictionary.kernel_size}×"
            f"{dictionary.kernel_size} filters with padding {dictionary.padding}"
        )
    total = dictionary.num_atoms * code_size[0] * code_size[1]
    if num_nonzeros is not None:
        num_nonzeros = check_int(
            "num_nonzeros", num_nonzeros, 0, total, f" (the code size m·H'·W' = {total})"
        )
    coefficient_range = _check_range("coefficient_range", coefficient_range)
    noise_l2_inf = check_number("noise_l2_inf", noise_l2_inf, 0.0)
    weight = dictionary.weight.detach()
    width = stripe_width(dictionary.kernel_size, dictionary.stride)
    mask = _stripe_limited_support(
        num_signals,
        dictionary.num_atoms,
        code_size,
        (width, width),
        l0_inf,
        num_nonzeros,
        generator,
    ).to(_draw_device(generator))
    codes = _values(mask, coefficient_range, nonnegative, generator, weight.dtype)
    codes = codes.to(weight.device)
    signals = dictionary.synthesize(codes, image_size)
    noise = _patch_noise(
        signals.shape, noise_l2_inf, dictionary.kernel_size, generator, weight.dtype
    )
    return signals + noise.to(weight.device), codes


# ---------------------------------------------------------------------------------- ML-CSC
def sparsify_filters_(dictionary, density: float):
    """Keep the largest ``density`` fraction of every atom's weights, zero the rest, in place.

    Sparse filters keep the intermediate codes of an ML-CSC model sparse: a code with few
    non-zeros synthesised by sparse filters is again sparse (Sulam, Papyan, Romano & Elad 2018,
    IEEE TSP, whose learned MNIST filters are 99 % sparse). Each atom keeps
    ``max(1, round(density·size))`` entries of largest magnitude and is then rescaled to unit
    ℓ2 norm: :meth:`Dictionary.sparsify_filters_ <mlcsc.dictionary.Dictionary.sparsify_filters_>`.

    Args:
        dictionary: a :class:`~mlcsc.ConvDictionary` (atoms: filters ``(c, k, k)``) or a
            :class:`~mlcsc.DenseDictionary` (atoms: columns).
        density: fraction ``0 < density ≤ 1`` of weights to keep per atom.

    Returns:
        The same dictionary.

    Raises:
        ValueError: for a density outside ``(0, 1]``.

    Shape:
        the weight keeps its shape: ``(m, c, k, k)`` or ``(n, m)``.

    Examples:
        Two of the eight weights of each ``2 × 2 × 2`` filter are kept, and the filters stay
        unit-norm:

        >>> from mlcsc import ConvDictionary
        >>> D = ConvDictionary(in_channels=2, num_atoms=4, kernel_size=2)
        >>> sparsify_filters_(D, 0.25) is D
        True
        >>> (D.weight != 0).flatten(1).sum(dim=1).tolist()
        [2, 2, 2, 2]
        >>> bool(torch.allclose(D.atom_norms(), torch.ones(4)))
        True
    """
    return dictionary.sparsify_filters_(density)


@torch.no_grad()
def mlcsc_signals(
    model_or_dictionaries,
    num_signals: int,
    input_size: int | tuple[int, int],
    deepest_cardinality: int,
    *,
    coefficient_range: tuple[float, float] = (1.0, 2.0),
    nonnegative: bool = True,
    noise_l2_inf: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Draw ML-CSC signals: ``X = D₁Γ₁ + E``, ``Γ_{i−1} = D_iΓ_i`` (MODEL.md §3).

    The deepest code ``Γ_K`` has exactly ``deepest_cardinality`` non-zeros at uniformly random
    (atom, position) entries, non-negative by default (as the ReLU pursuits assume), with
    magnitudes in ``coefficient_range``; every shallower code is synthesised from it, so the
    codes are consistent across layers by construction (Papyan, Romano & Elad 2017, JMLR).
    They are also *sparse* when the filters are: apply :func:`sparsify_filters_` to the
    dictionaries first (Sulam, Papyan, Romano & Elad 2018, IEEE TSP). ``E`` is Gaussian, scaled
    per signal so that its ``‖E‖₂,∞^P`` in patches of ``D₁``'s filter size is
    ``noise_l2_inf``.

    Args:
        model_or_dictionaries: an :class:`~mlcsc.MLCSC` or ``[D₁, …, D_K]``
            (:class:`~mlcsc.ConvDictionary`, channels chained).
        num_signals: ``B ≥ 1``.
        input_size: ``(H, W)`` (or ``H``) of the signals.
        deepest_cardinality: ``‖Γ_K‖₀`` per signal, at most ``m_K·H_K·W_K``.
        coefficient_range: ``(low, high)`` with ``0 < low ≤ high``.
        nonnegative: positive deepest coefficients (else random signs).
        noise_l2_inf: ``‖E‖₂,∞^P ≥ 0`` of the noise added to the signal.
        generator: source of randomness.

    Returns:
        ``(signals, [Γ₁, …, Γ_K])``; the clean signal is ``D₁Γ₁``.

    Raises:
        ValueError: naming the argument, what was expected and what was given.

    Shape:
        signals ``(B, c, H, W)``; ``Γ_i``: ``(B, m_i, H_i, W_i)``.

    Examples:
        A two-layer stack, ``1 → 8 → 16`` channels: ``Γ₂`` has exactly 3 non-negative
        non-zeros per signal and the shallower code and the signal are synthesised from it:

        >>> from mlcsc import ConvDictionary
        >>> D1 = ConvDictionary(in_channels=1, num_atoms=8, kernel_size=5)
        >>> D2 = ConvDictionary(in_channels=8, num_atoms=16, kernel_size=3, stride=2)
        >>> generator = torch.Generator().manual_seed(0)
        >>> X, (G1, G2) = mlcsc_signals([D1, D2], 2, 20, deepest_cardinality=3, generator=generator)
        >>> X.shape, G1.shape, G2.shape
        (torch.Size([2, 1, 20, 20]), torch.Size([2, 8, 16, 16]), torch.Size([2, 16, 7, 7]))
        >>> (G2 != 0).sum(dim=(1, 2, 3)).tolist(), bool((G2 >= 0).all())
        ([3, 3], True)
        >>> bool(torch.allclose(G1, D2.synthesize(G2, (16, 16)), atol=1e-6))
        True
        >>> bool(torch.allclose(X, D1.synthesize(G1, (20, 20)), atol=1e-6))
        True
    """
    dictionaries = list(getattr(model_or_dictionaries, "dictionaries", model_or_dictionaries))
    if not dictionaries:
        raise ValueError("model_or_dictionaries must be an MLCSC or a non-empty list")
    for i in range(1, len(dictionaries)):
        if dictionaries[i].in_channels != dictionaries[i - 1].num_atoms:
            raise ValueError(
                f"dictionaries[{i}] must have in_channels = {dictionaries[i - 1].num_atoms} "
                f"(the atoms of dictionaries[{i - 1}]), got {dictionaries[i].in_channels}"
            )
    num_signals = check_int("num_signals", num_signals, 1)
    sizes = [_check_size("input_size", input_size)]
    for i, d in enumerate(dictionaries):
        size = d.output_size(sizes[-1])
        if min(size) < 1:
            raise ValueError(
                f"input_size {sizes[0]} is too small: layer {i + 1} ({d.kernel_size}×"
                f"{d.kernel_size} filters, stride {d.stride}, padding {d.padding}) receives "
                f"{sizes[-1]}"
            )
        sizes.append(size)
    deepest = dictionaries[-1]
    layer_size = deepest.num_atoms * sizes[-1][0] * sizes[-1][1]
    deepest_cardinality = check_int(
        "deepest_cardinality",
        deepest_cardinality,
        0,
        layer_size,
        f" (the size m_K·H_K·W_K = {deepest.num_atoms}·{sizes[-1][0]}·{sizes[-1][1]} "
        "of the deepest layer)",
    )
    coefficient_range = _check_range("coefficient_range", coefficient_range)
    noise_l2_inf = check_number("noise_l2_inf", noise_l2_inf, 0.0)
    weight = deepest.weight.detach()
    mask = _exact_support(num_signals, layer_size, deepest_cardinality, generator)
    gamma = _values(mask, coefficient_range, nonnegative, generator, weight.dtype)
    gamma = gamma.view(num_signals, deepest.num_atoms, *sizes[-1]).to(weight.device)
    codes = [gamma]
    for i in range(len(dictionaries) - 1, 0, -1):
        codes.insert(0, dictionaries[i].synthesize(codes[0], sizes[i]))
    signals = dictionaries[0].synthesize(codes[0], sizes[0])
    noise = _patch_noise(
        signals.shape, noise_l2_inf, dictionaries[0].kernel_size, generator, weight.dtype
    )
    return signals + noise.to(signals.device), codes

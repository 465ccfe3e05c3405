"""A certified upper bound of ``‖D‖₂²`` for a convolutional dictionary, valid for every image size.

The synthesis ``DΓ = conv_transpose2d(Γ, W, stride=s, padding=p)`` with filters ``W`` of shape
``(m, c, k, k)`` is, before its output is cropped by the padding and the signal size, a
translation-invariant operator from ``m`` code channels to ``c`` signal channels. Its norm on an
infinite grid is the supremum of the norm of its frequency response; every finite image size and
every padding only restricts the code to a window and crops the signal, neither of which can
increase a norm (``‖P D_∞ E‖ ≤ ‖D_∞‖`` for a coordinate restriction ``E`` and a projection
``P``). So ``sup_ω λ_max(D̂(ω)ᴴD̂(ω))`` bounds ``‖D‖₂²`` for every image, and the bound is reached
in the limit of large images.

**Strides (polyphase form).** Signal pixel ``s·q + r`` (``r ∈ {0,…,s−1}²`` its phase) receives
``Σ_i Γ[:, i] W[:, :, s(q − i) + r]``: for each phase ``r`` a stride-1 convolution of the code
with the sub-sampled filters ``W_r[:, :, t] = W[:, :, s·t + r]`` (``t ∈ {0,…,K−1}²``,
``K = ⌈k/s⌉``, zero beyond ``k``). Stacking the ``s²`` phases as channels makes the strided
synthesis a stride-1 convolution from ``m`` to ``c·s²`` channels with ``K × K`` filters
(:func:`polyphase_filters`); the interleaving of the phases is a permutation of the signal
pixels, which preserves norms. With ``D̂(ω) = Σ_t W_tᵀ e^{−iω·t}`` (a ``c s² × m`` matrix):

    ‖D‖₂² ≤ λ* := sup_ω λ(ω),   λ(ω) = λ_max(G(ω)),   G(ω) = D̂(ω)D̂(ω)ᴴ  (or D̂ᴴD̂).

**Certifying the supremum.** ``G(ω) = Σ_τ G_τ e^{−iω·τ}`` is a matrix trigonometric polynomial
with lags ``|τ₁|, |τ₂| ≤ b = K − 1`` (``G_τ`` the autocorrelation of the polyphase filters,
recovered exactly from ``(2K − 1)²`` samples; ``b = max(K₁, K₂) − 1`` for rectangular ones).
Let ``ω*`` be a maximiser and ``u*`` the top eigenvector of ``G(ω*)``; ``f(ω) = u*ᴴG(ω)u*``
satisfies ``0 ≤ f ≤ λ ≤ λ*`` and ``f(ω*) = λ*``, so ``ω*`` maximises ``f`` too and
``∇f(ω*) = 0``. Along a unit direction ``d``, ``t ↦ f(ω* + td) − λ*/2`` is a sum of
exponentials of frequencies ``|d·τ| ≤ b‖d‖₁`` bounded by ``λ*/2``, so Bernstein's inequality
gives ``|∂²_t f| ≤ b²‖d‖₁²·λ*/2``. By Taylor's theorem, for any point ``g`` with
``‖g − ω*‖₁ ≤ R``:

    λ(g) ≥ f(g) ≥ λ* − ½·b²R²·λ*/2 = λ*(1 − ρ),   ρ = b²R²/4.

The frequencies are covered by diamonds (ℓ₁ balls, which tile the plane) of radius ``R``;
``λ(−ω) = λ(ω)`` for real filters, so half of the torus suffices. A diamond with centre ``g``
can hold ``ω*`` only if ``λ(g) ≥ λ*(1 − ρ)``. To prove ``λ* ≤ U`` it is therefore enough that
every diamond satisfies ``λ(g) < U(1 − ρ)``, which a Cholesky factorisation of
``U(1 − ρ)I − G(g)`` decides (it succeeds iff the matrix is positive definite), about twice
as fast as an eigen-decomposition. Diamonds that fail are split into four of half the radius
(``ρ`` drops four-fold) until all pass. ``U`` is ``(1 + rtol)`` times the best value
``λ(g) ≤ λ*`` seen (a lower bound, refined by a local search), so the result lies within
``rtol`` of ``λ*`` (and of ``‖D‖₂²`` on large images). If
the work budget runs out first (``λ(ω)`` nearly flat near its top, e.g. very many random
atoms), one last pass bounds ``max λ(g)`` over the diamonds left (split as finely as the budget
allows), and ``max(U, max λ(g)/(1 − ρ))`` is still certified but looser. All arithmetic is
in float64, and the margins cover its rounding.

Bernstein's constant ``b²λ*/2`` needs nothing but ``b``; the filter-dependent curvature bound
``Σ_τ (d·τ)²‖G_τ‖`` was 1.0–2.3 times larger on the random filter banks tried (the norms of the
lags add up without their phases) and costs a spectral norm per lag.

Measured on two CPU cores shared with other work (random unit-norm atoms, default arguments):
0.01 s for ``(32, 1, 6, 6)`` with stride 2, 0.15 s for ``(64, 32, 6, 6)`` with stride 2 and
0.3–0.8 s for ``(512, 64, 4, 4)``, all within ``rtol``; 1.3–1.9 s for ``(1024, 128, 7, 7)``,
whose ``λ(ω)`` is nearly flat near its top, so the default budget stops at about 12 % above
``λ*`` (``max_evaluations=16384`` reaches ``rtol`` in about 9 s).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcsc.checks import check_int, check_number

__all__ = ["conv_lipschitz_bound", "polyphase_filters"]

# relative margin that covers the float64 rounding of the Gram matrices and the factorisations
_ROUNDING = 1e-9


def polyphase_filters(weight: Tensor, stride: int = 1) -> Tensor:
    """The strided synthesis as a stride-1 synthesis into ``c·s²`` channels.

    ``conv_transpose2d(Γ, weight, stride=s)`` equals, up to a permutation of the signal pixels
    (phase ``(r₁, r₂)`` of pixel ``(s·q₁ + r₁, s·q₂ + r₂)`` becomes channel
    ``(c_index·s + r₁)·s + r₂`` at position ``q``), ``conv_transpose2d(Γ, polyphase)`` with
    stride 1 and the returned filters.

    Args:
        weight: filters ``(m, c, k₁, k₂)``.
        stride: stride ``s ≥ 1`` of the code grid.

    Returns:
        ``polyphase[:, (j·s + r₁)·s + r₂, t₁, t₂] = weight[:, j, s·t₁ + r₁, s·t₂ + r₂]`` (zero
        where the index exceeds the filter).

    Shape:
        ``(m, c, k₁, k₂)`` → ``(m, c·s², ⌈k₁/s⌉, ⌈k₂/s⌉)``.

    The polyphase decomposition of multirate filter banks (Vaidyanathan 1990, Proc. IEEE) in
    two dimensions; :func:`conv_lipschitz_bound` uses it to reduce a strided dictionary to a
    stride-1 one with the same norm.

    Examples:
        The channel order is that of ``pixel_shuffle``, which interleaves the phases back; the
        stride-1 synthesis only adds a last row and column of zeros to the strided one:

        >>> g = torch.Generator().manual_seed(0)
        >>> W = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
        >>> codes = torch.randn(2, 4, 4, 4, generator=g, dtype=torch.float64)
        >>> P = polyphase_filters(W, stride=2)
        >>> P.shape
        torch.Size([4, 12, 2, 2])
        >>> strided = F.conv_transpose2d(codes, W, stride=2)  # (2, 3, 9, 9)
        >>> phases = F.pixel_shuffle(F.conv_transpose2d(codes, P), 2)  # (2, 3, 10, 10)
        >>> torch.allclose(phases[..., :9, :9], strided)
        True
        >>> float(phases[..., 9, :].abs().sum() + phases[..., :, 9].abs().sum())
        0.0
    """
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (m, c, k, k), got {tuple(weight.shape)}")
    stride = check_int("stride", stride, 1)
    m, c, k1, k2 = weight.shape
    taps1, taps2 = -(-k1 // stride), -(-k2 // stride)
    padded = F.pad(weight, (0, taps2 * stride - k2, 0, taps1 * stride - k1))
    phases = padded.reshape(m, c, taps1, stride, taps2, stride).permute(0, 1, 3, 5, 2, 4)
    return phases.reshape(m, c * stride * stride, taps1, taps2)


@torch.no_grad()
def conv_lipschitz_bound(
    weight: Tensor,
    stride: int = 1,
    rtol: float = 5e-3,
    max_evaluations: int | None = None,
) -> Tensor:
    """Certified upper bound of ``‖D‖₂²`` for the synthesis ``conv_transpose2d(·, weight, s)``.

    Valid for every image size, every padding and every ``output_padding`` (derivation in the
    module docstring): ``‖DΓ‖² ≤ bound·‖Γ‖²`` for every code ``Γ``, so ``1/bound`` is a safe
    ISTA/FISTA step (and ``1.99/bound`` a convergent one) whatever images the dictionary
    meets. The bound is never below ``λ* = sup_ω λ_max(D̂(ω)ᴴD̂(ω))`` over the polyphase
    frequency response, the limit of the exact norm for large images (small images have a
    lower norm), and it is at most ``(1 + rtol)·λ*`` when the search finishes within
    ``max_evaluations``.

    Args:
        weight: filters ``(m, c, k₁, k₂)`` (any float dtype and device; float64 inside).
        stride: stride ``s`` of the code grid.
        rtol: how far above ``λ*`` the certified value may be.
        max_evaluations: budget of ``n × n`` frequency-response matrices to test
            (``n = min(m, c·s²)``, one Cholesky factorisation each); ``None`` picks
            ``1.5·2³⁰/n³`` clipped to ``[256, 16384]`` (about a second on two CPU cores for
            ``n = 128``). A search that runs out of budget — ``λ(ω)`` nearly flat near its top,
            typical of very many random atoms — still returns a certified bound, only
            further above ``λ*``.

    Returns:
        A 0-d tensor in ``weight``'s dtype and on its device, detached, rounded upwards.

    Raises:
        ValueError: for a weight that is not 4-D, not floating point or not finite, a bad
            stride or a non-positive ``rtol``.

    Shape:
        weight: ``(m, c, k₁, k₂)`` → ``()``.

    The norm of a convolution is the supremum of the spectral norm of its frequency response
    (Sedghi, Gupta & Long 2019, ICLR, for periodic images); the supremum is certified with
    Bernstein's inequality for trigonometric polynomials. ``1/L`` with ``L ≥ ‖D‖₂²`` is the step
    of ISTA (Daubechies, Defrise & De Mol 2004, CPAM) and FISTA (Beck & Teboulle 2009, SIAM J.
    Imaging Sci.).

    Examples:
        A flat ``2 × 2`` filter: its frequency response peaks at ``ω = 0`` with ``(Σw)² = 16``;
        with stride 2 its copies do not overlap and ``‖D‖₂² = ‖w‖₂² = 4`` exactly:

        >>> bool(16 <= conv_lipschitz_bound(torch.ones(1, 1, 2, 2)) <= 16 * 1.006)
        True
        >>> round(float(conv_lipschitz_bound(torch.ones(1, 1, 2, 2), stride=2)), 4)
        4.0

        The bound holds for the explicit matrix of ``D`` on any image size:

        >>> from mlcsc.functional import conv_synthesis, operator_matrix
        >>> g = torch.Generator().manual_seed(0)
        >>> W = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
        >>> D = operator_matrix(lambda codes: conv_synthesis(codes, W, 2), (4, 6, 6), W)
        >>> D.shape, bool(torch.linalg.matrix_norm(D, 2) ** 2 <= conv_lipschitz_bound(W, 2))
        (torch.Size([338, 144]), True)
    """
    check_number("rtol", rtol, 0.0, low_open=True, allow_inf=True)
    if not torch.is_floating_point(weight):
        raise ValueError(f"weight must be a floating-point tensor, got {weight.dtype}")
    w = weight.detach().to(torch.float64)
    if not bool(torch.isfinite(w).all()):
        raise ValueError("weight contains non-finite values (nan or inf)")
    phases = polyphase_filters(w, stride)
    coefficients = _autocorrelation(phases)  # (L₁, L₂, n, n), lag τ at index τ + K − 1
    n = coefficients.shape[-1]
    b = max(phases.shape[-2:]) - 1  # the largest lag
    if max_evaluations is None:
        max_evaluations = max(256, min(1 << 14, (3 << 29) // n**3))
    zero_lag = coefficients[phases.shape[-2] - 1, phases.shape[-1] - 1]  # G_0
    if float(zero_lag.diagonal().sum()) == 0:  # trace G_0 = ‖weight‖²: all filters are zero
        value = torch.zeros((), dtype=torch.float64)
    elif b == 0:  # a single tap: the frequency response is constant and its norm exact
        value = torch.linalg.eigvalsh(zero_lag)[-1].clamp_min(0) * (1 + _ROUNDING)
    else:
        search = _Search(coefficients.reshape(*coefficients.shape[:2], n * n), n, b, rtol)
        value = search.run(max_evaluations)
    return _round_up(value, weight.dtype).to(weight.device)


def _round_up(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value`` (float64) in ``dtype``, rounded towards +∞ so that it stays an upper bound."""
    value = value.detach().cpu()
    out = value.to(dtype)
    if out.double() < value:
        out = torch.nextafter(out, torch.tensor(math.inf, dtype=dtype))
    return out


def _autocorrelation(phases: Tensor) -> Tensor:
    """``G_τ``: coefficients of ``G(ω) = Σ_τ G_τ e^{−iω·τ}``, the smaller Gram of ``D̂(ω)``.

    ``G`` is sampled on the ``L₁ × L₂`` grid (``L = 2K − 1``; half of it, by the symmetry
    ``G(−ω) = conj G(ω)``) and inverted by ``irfft2``: ``L`` samples per axis resolve the
    ``2K − 1`` lags exactly. Real products throughout (the filters are real): with
    ``D̂ = X + iY``, ``Re G = XXᵀ + YYᵀ`` and ``Im G = YXᵀ − XYᵀ`` (``c s² × c s²``), or
    ``XᵀX + YᵀY`` and ``XᵀY − YᵀX`` (``m × m``), whichever is smaller.

    Shape:
        ``(m, C, K₁, K₂)`` → ``(2K₁ − 1, 2K₂ − 1, n, n)`` with ``n = min(m, C)``; lag ``τ`` at
        index ``τ + K − 1``.
    """
    m, channels, taps1, taps2 = phases.shape
    size1, size2 = 2 * taps1 - 1, 2 * taps2 - 1
    device = phases.device
    freq1 = 2 * math.pi * torch.arange(size1, dtype=torch.float64, device=device) / size1
    freq2 = 2 * math.pi * torch.arange(taps2, dtype=torch.float64, device=device) / size2
    t1 = torch.arange(taps1, dtype=torch.float64, device=device)
    t2 = torch.arange(taps2, dtype=torch.float64, device=device)
    tall = channels <= m  # D̂ is C × m: the Gram on the smaller side is cheaper
    n = channels if tall else m
    gram = torch.empty(size1, taps2, n, n, dtype=torch.complex128, device=device)
    taps = phases.reshape(m * channels, taps1 * taps2).T  # (K₁K₂, m·C)
    # rows of ω₁ per pass: about 64 MiB of frequency responses at a time
    rows = max(1, (1 << 23) // (2 * taps2 * m * channels))
    for first in range(0, size1, rows):
        freqs = freq1[first : first + rows]
        # angle[g, (t₁, t₂), j] = ω₁_g t₁ + ω₂_j t₂
        angle = (freqs[:, None, None, None] * t1[:, None, None]) + (t2[:, None] * freq2)
        angle = angle.reshape(-1, taps1 * taps2, taps2).transpose(1, 2)  # (g, ω₂, K₁K₂)
        trig = torch.stack([torch.cos(angle), -torch.sin(angle)])  # X rows, then Y rows
        # (2, g, ω₂, m, C): contiguous blocks, each the transpose of X or Y (C × m)
        parts = (trig.reshape(-1, taps1 * taps2) @ taps).view(2, -1, taps2, m, channels)
        x, y = parts[0], parts[1]
        if tall:
            real = x.mT @ x + y.mT @ y
            cross = y.mT @ x
        else:
            real = x @ x.mT + y @ y.mT
            cross = x @ y.mT
        gram[first : first + rows] = torch.complex(real, cross - cross.mT)
    coefficients = torch.fft.irfft2(gram, s=(size1, size2), dim=(0, 1))
    return torch.roll(coefficients, shifts=(taps1 - 1, taps2 - 1), dims=(0, 1))


def _splits(count: float, budget: int) -> int:
    """The most four-fold splits ``j`` with ``4ʲ·count ≤ budget`` (0 when none fits)."""
    j = 0
    while 4 ** (j + 1) * count <= budget:
        j += 1
    return j


class _Search:
    """Branch and bound over diamonds of the half torus; see the module docstring.

    Diamond centres are integer pairs ``a`` at scale ``unit`` (``ω = a·unit``). Level 0 is the
    quincunx lattice ``a₁ + a₂`` even with radius ``R₀ = unit`` (``N = 2π/unit`` even, so it is
    periodic); a diamond of radius ``R`` with centre ``a`` is covered by the four of radius
    ``R/2`` with centres ``2a ± e₁, 2a ± e₂`` at scale ``unit/2``.

    The matrices are held negated, ``−G(ω)``: the Cholesky test of ``tI − G`` then only adds
    ``t`` to a diagonal instead of writing a shifted copy (the matrices are large and the test
    is memory-bound), and ``λ_max(G) = −λ_min(−G)``.
    """

    def __init__(self, coefficients: Tensor, n: int, b: int, rtol: float):
        self.n, self.b, self.rtol = n, b, rtol
        self.device = device = coefficients.device
        size1, size2 = coefficients.shape[:2]
        # G_{−τ} = G_τᵀ holds up to the rounding of the FFTs; impose it exactly so that every
        # G(ω) is Hermitian (the factorisations read one triangle only)
        square = coefficients.view(size1, size2, n, n)
        square = (square + square.flip(0, 1).transpose(-1, -2)) / 2
        self.full = square.reshape(size1 * size2, n * n)  # (L₁·L₂, n²)
        self.by_lag2 = square.permute(1, 0, 2, 3).reshape(size2, size1 * n * n)
        self.lags1 = torch.arange(size1, dtype=torch.float64, device=device) - (size1 - 1) // 2
        self.lags2 = torch.arange(size2, dtype=torch.float64, device=device) - (size2 - 1) // 2
        self.chunk = max(16, (1 << 21) // (n * n))  # about 32 MiB of matrices at a time
        generator = torch.Generator().manual_seed(0)
        start = torch.randn(n, 2, dtype=torch.float64, generator=generator)
        self.start = torch.complex(start[:, 0], start[:, 1]).to(device)
        self.lower = 0.0  # the largest λ(g) seen: a lower bound of λ*
        self.evaluations = 0

    @property
    def target(self) -> float:
        """``U = (1 + rtol)·lower``: the bound the search tries to certify."""
        return self.lower * (1 + self.rtol)

    def rho(self, radius: float) -> float:
        """``ρ = b²R²/4``: a diamond of ℓ₁ radius ``R`` holding ω* has ``λ(g) ≥ λ*(1 − ρ)``."""
        return (self.b * radius) ** 2 / 4

    # ---------------------------------------------------------------- frequency response
    def negated(self, omega1: Tensor, omega2: Tensor) -> Tensor:
        """``−G(ω)`` at the given frequencies, ``(P, n, n)`` complex.

        With many points per distinct ``ω₂`` (pass them sorted by ``ω₂``), the sum over ``τ₂``
        is made once per ``ω₂`` and the sum over ``τ₁`` per point; otherwise all lags at once.
        All products are real: ``e^{−iθ} = cos θ − i sin θ`` and ``G_τ`` is real.
        """
        n, size1 = self.n, self.lags1.numel()
        points = omega1.numel()
        out = torch.empty(points, n * n, dtype=torch.complex128, device=self.device)
        rows, counts = torch.unique_consecutive(omega2, return_counts=True)
        if points < 3 * rows.numel():
            angle = omega1[:, None, None] * self.lags1[:, None] + omega2[:, None, None] * self.lags2
            angle = angle.reshape(points, -1)
            stacked = torch.cat([-torch.cos(angle), torch.sin(angle)]) @ self.full
            torch.complex(stacked[:points], stacked[points:], out=out)
            return out.view(points, n, n)
        cos1 = torch.cos(omega1[:, None] * self.lags1)  # (P, L₁)
        sin1 = torch.sin(omega1[:, None] * self.lags1)
        bounds = [0, *torch.cumsum(counts, 0).tolist()]
        block = max(1, self.chunk // (2 * size1))
        for first in range(0, rows.numel(), block):
            angle = rows[first : first + block, None] * self.lags2  # (q, L₂)
            # per distinct ω₂: [A; B] with A = Σ_τ₂ G_τ cos(ω₂τ₂), B = Σ_τ₂ G_τ sin(ω₂τ₂)
            trig = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1).view(-1, angle.shape[1])
            inner = (trig @ self.by_lag2).view(-1, 2 * size1, n * n)  # (q, 2L₁, n²)
            for j in range(inner.shape[0]):
                lo, hi = bounds[first + j], bounds[first + j + 1]
                c, s = cos1[lo:hi], sin1[lo:hi]
                # −G = (−cA + sB) + i(sA + cB): real parts in the first rows, imaginary below
                phases = torch.cat([torch.cat([-c, s], dim=1), torch.cat([s, c], dim=1)])
                stacked = phases @ inner[j]
                torch.complex(stacked[: hi - lo], stacked[hi - lo :], out=out[lo:hi])
        return out.view(points, n, n)

    def rayleigh(self, negated: Tensor, steps: int = 3) -> Tensor:
        """Rayleigh quotients of ``G`` after a few batched power steps: lower bounds of
        ``λ(g)`` (``−G`` has the same dominant eigenvectors, ``G`` being semi-definite)."""
        v = self.start.expand(negated.shape[0], self.n).unsqueeze(-1)
        for _ in range(steps):
            v = negated @ v
            v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
        return -(v.mH @ negated @ v).real.view(-1)

    def top_eigenvalue(self, negated: Tensor) -> Tensor:
        return -torch.linalg.eigvalsh(negated)[:, 0]

    def below(self, negated: Tensor, threshold: float) -> Tensor:
        """Mask of ``λ_max(G) < threshold``: Cholesky of ``threshold·I − G`` succeeds."""
        self.evaluations += negated.shape[0]
        diagonal = negated.diagonal(dim1=-2, dim2=-1)
        saved = diagonal.clone()
        diagonal.add_(threshold * (1 - _ROUNDING))
        failed = torch.linalg.cholesky_ex(negated)[1]
        diagonal.copy_(saved)  # exactly −G again
        return failed == 0

    def see(self, values: Tensor) -> None:
        if values.numel():
            self.lower = max(self.lower, float(values.max()))

    # ---------------------------------------------------------------- the search
    def level_zero(self, rho: float) -> tuple[Tensor, Tensor, float]:
        """Quincunx centres of the half torus with ``b²R₀²/4 ≤ rho``; returns them and ``R₀``."""
        half = max(1, math.ceil(self.b * math.pi / (2 * math.sqrt(rho))))
        unit = math.pi / half  # 2π/N with N = 2·half even
        a1, a2 = torch.meshgrid(
            torch.arange(2 * half, device=self.device),
            torch.arange(half + 1, device=self.device),
            indexing="ij",
        )
        keep = (a1 + a2) % 2 == 0
        return a1[keep], a2[keep], unit

    def run(self, max_evaluations: int) -> Tensor:
        rho0 = 0.3  # coarse enough to be cheap, fine enough to exclude part of the torus
        a1, a2, unit = self.level_zero(rho0)
        self.local_search(a1, a2, unit)
        if 5 * a1.numel() > max_evaluations:
            # not even one refinement of a flat λ(ω) would fit: a single pass at the finest
            # level-0 resolution the budget allows (never coarser than ρ = 0.5)
            rho = min(0.5, self.b**2 * math.pi**2 / (4 * max_evaluations))
            a1, a2, unit = self.level_zero(rho)
            return self.final_pass(a1, a2, unit)
        scale = unit
        while True:
            a1, a2 = self.sweep(a1, a2, scale)
            if a1.numel() == 0:
                return torch.tensor(self.target, dtype=torch.float64)
            remaining = max_evaluations - self.evaluations
            # room to sweep the children and finish after (and a resolution worth refining:
            # ρ near the rounding margin cannot exclude anything any more)
            if 8 * a1.numel() <= remaining and self.rho(scale / 2) > 1e-12:
                a1, a2 = self.split(a1, a2, scale / 2)
                scale /= 2
                continue
            # finish: the diamonds left, split as often as the budget allows, in one pass
            for _ in range(_splits(a1.numel(), remaining)):
                a1, a2 = self.split(a1, a2, scale / 2)
                scale /= 2
            return self.final_pass(a1, a2, scale)

    def chunks(self, a1: Tensor, a2: Tensor, scale: float):
        """``(a₁, a₂, −G)`` over the centres in chunks, sorted by ``ω₂`` (cheaper to sum)."""
        order = torch.argsort(a2, stable=True)
        a1, a2 = a1[order], a2[order]
        for start in range(0, a1.numel(), self.chunk):
            part = slice(start, start + self.chunk)
            yield a1[part], a2[part], self.negated(a1[part] * scale, a2[part] * scale)

    def local_search(self, a1: Tensor, a2: Tensor, unit: float) -> None:
        """Raise the lower bound: rank the level-0 centres, then a pattern search from the
        best two (coordinate moves of halving length). Every value seen is some ``λ(ω) ≤ λ*``,
        so this only tightens ``U`` — correctness never depends on it."""
        centres, scores = [], []
        for c1, c2, negated in self.chunks(a1, a2, unit):
            centres.append(torch.stack([c1, c2], dim=1) * unit)
            scores.append(self.rayleigh(negated))
        best = torch.cat(scores).topk(min(2, a1.numel())).indices
        points = torch.cat(centres)[best]  # (S, 2)
        values = self.top_eigenvalue(self.negated(points[:, 0], points[:, 1]))
        self.see(values)
        moves = torch.tensor(
            [[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=torch.float64, device=self.device
        )
        step = unit / 2
        for _ in range(8):
            trial = (points[:, None, :] + step * moves).reshape(-1, 2)
            trial_values = self.top_eigenvalue(self.negated(trial[:, 0], trial[:, 1]))
            best_value, best_move = trial_values.view(points.shape[0], 4).max(dim=1)
            better = best_value > values
            points = torch.where(better[:, None], points + step * moves[best_move], points)
            values = torch.where(better, best_value, values)
            step = step if bool(better.all()) else step / 2
            self.see(values)

    def sweep(self, a1: Tensor, a2: Tensor, scale: float) -> tuple[Tensor, Tensor]:
        """The diamonds that may hold ``ω*`` if ``λ* > U``: those with ``λ(g) ≥ U(1 − ρ)``.

        The best kept centre of each chunk (by Rayleigh quotient) is also computed exactly,
        which raises the lower bound when the local search missed the global peak.
        """
        rho = self.rho(scale)
        kept1, kept2 = [], []
        for c1, c2, negated in self.chunks(a1, a2, scale):
            kept = ~self.below(negated, self.target * (1 - rho))
            if bool(kept.any()):
                survivors = negated[kept]
                best = self.rayleigh(survivors).argmax()
                self.see(self.top_eigenvalue(survivors[best].unsqueeze(0)))
            kept1.append(c1[kept])
            kept2.append(c2[kept])
        return torch.cat(kept1), torch.cat(kept2)

    def final_pass(self, a1: Tensor, a2: Tensor, scale: float) -> Tensor:
        """``max(U, M/(1 − ρ))`` with ``M`` a certified bound of ``λ(g)`` over the diamonds left.

        Each diamond is either excluded (``λ(g) < U(1 − ρ)``) or shown to have
        ``λ(g) < t = (1 + 10⁻⁸)·lower``; the few above ``t`` are computed exactly.
        """
        rho = self.rho(scale)
        largest = 0.0
        for _, _, negated in self.chunks(a1, a2, scale):
            threshold = max(self.target * (1 - rho), self.lower * (1 + 1e-8))
            above = ~self.below(negated, threshold)
            if threshold > self.target * (1 - rho):
                largest = max(largest, threshold)
            if bool(above.any()):
                values = self.top_eigenvalue(negated[above])
                self.see(values)
                largest = max(largest, float(values.max()) * (1 + _ROUNDING))
        return torch.tensor(max(self.target, largest / (1 - rho)), dtype=torch.float64)

    def split(self, a1: Tensor, a2: Tensor, scale: float) -> tuple[Tensor, Tensor]:
        """Four children per diamond; drop those outside the strip ``0 ≤ ω₂ ≤ π``."""
        d1 = torch.tensor([1, -1, 0, 0], device=self.device)
        d2 = torch.tensor([0, 0, 1, -1], device=self.device)
        c1 = (2 * a1[:, None] + d1).reshape(-1)
        c2 = (2 * a2[:, None] + d2).reshape(-1)
        omega2 = c2 * scale
        inside = (omega2 + scale > 0) & (omega2 - scale < math.pi)  # radius = scale
        return c1[inside], c2[inside]

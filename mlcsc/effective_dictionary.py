"""The effective dictionary ``D_eff = D₁D₂⋯D_K`` of an ML-CSC stack, as one dictionary.

The ML-CSC model ``Y = D₁Γ₁, Γ₁ = D₂Γ₂, …, Γ_{K−1} = D_KΓ_K`` says ``Y = D_effΓ_K``: the deepest
code is a sparse code in the dictionary of "molecules" (Sulam, Papyan, Romano & Elad 2018). Its
norm ``‖D₁⋯D_j‖₂²`` is the Lipschitz constant that sizes the steps of the multi-layer pursuits
(:mod:`mlcsc.pursuit.multilayer`), and it is the dictionary of the ML-CSC projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mlcsc.dictionary import ConvDictionary, Dictionary
from mlcsc.functional.conv import conv_synthesis

__all__ = ["EffectiveDictionary"]


class EffectiveDictionary(Dictionary):
    """``D₁D₂⋯D_K`` at fixed signal sizes, with the :class:`~mlcsc.dictionary.Dictionary`
    interface (synthesis, its exact adjoint, the Lipschitz constant by Lanczos iteration).

    :meth:`synthesize` applies the dictionaries deepest first, ``Γ_K ↦ D₁(D₂(⋯D_KΓ_K))``, each
    at its layer's signal size, and :meth:`analyze` the adjoints in the reverse order,
    ``x ↦ D_Kᵀ⋯D₁ᵀx``; no matrix is formed. In the ML-CSC model of Sulam, Papyan, Romano &
    Elad (2018, "Multilayer convolutional sparse modeling: pursuit and dictionary learning",
    IEEE TSP 66(15)) this is the dictionary in which the deepest code represents the signal,
    ``Y = D_eff Γ_K``; its atoms are the "molecules" (:meth:`atom_norms`).

    Args:
        dictionaries: ``[D₁, …, D_K]`` (shared, not copied: the operator follows them as they
            learn).
        sizes: spatial size of the signal of every dictionary, ``[(H, W), (H₁, W₁), …]``
            (``None`` entries for dense dictionaries).

    Raises:
        ValueError: when there is not one size per dictionary.

    Shape:
        - synthesize: ``(B, m_K, H_K, W_K)`` → ``(B, C, H, W)``.
        - analyze: ``(B, C, H, W)`` → ``(B, m_K, H_K, W_K)``.

    Examples:
        >>> from mlcsc import ConvDictionary
        >>> stack = [ConvDictionary(1, 4, 3), ConvDictionary(4, 8, 3, stride=2)]
        >>> D = EffectiveDictionary(stack, [(9, 9), (7, 7)])
        >>> D.code_size(), D.synthesize(torch.zeros(2, 8, 3, 3)).shape
        ((3, 3), torch.Size([2, 1, 9, 9]))
        >>> D.analyze(torch.zeros(2, 1, 9, 9)).shape
        torch.Size([2, 8, 3, 3])
        >>> D.matrix().shape  # (1·9·9, 8·3·3)
        torch.Size([81, 72])
    """

    def __init__(self, dictionaries: Sequence[Dictionary], sizes: Sequence):
        super().__init__()
        if not dictionaries or len(sizes) != len(dictionaries):
            raise ValueError(
                f"an effective dictionary needs one signal size per dictionary, got "
                f"{len(dictionaries)} dictionaries and {len(sizes)} sizes"
            )
        self.dictionaries = nn.ModuleList(dictionaries)
        self.sizes = [tuple(size) if size is not None else None for size in sizes]

    @property
    def weight(self) -> Tensor:  # the dtype and device of the operator
        return self.dictionaries[-1].weight

    @property
    def num_atoms(self) -> int:
        return self.dictionaries[-1].num_atoms

    def code_size(self) -> tuple[int, int] | None:
        """Spatial size of the deepest code."""
        last = self.dictionaries[-1]
        size = self.sizes[-1]
        return last.output_size(size) if size is not None else None

    def synthesize(self, codes: Tensor, output_size=None) -> Tensor:
        """``D₁⋯D_KΓ_K`` (the signal size is the stack's, ``output_size`` is ignored)."""
        signal = codes
        for dictionary, size in zip(reversed(self.dictionaries), reversed(self.sizes), strict=True):
            signal = dictionary.synthesize(signal, size)
        return signal

    def analyze(self, x: Tensor) -> Tensor:
        """``D_Kᵀ⋯D₁ᵀx``, the adjoint of :meth:`synthesize`."""
        for dictionary in self.dictionaries:
            x = dictionary.analyze(x)
        return x

    def signal_size(self, y: Tensor):
        return self.sizes[0]

    def atom_norms(self) -> Tensor:
        """Norms of the molecules, the atoms of ``D₁⋯D_K`` as whole images.

        A unit code per deepest atom synthesised through every layer without cropping (the
        layers' padding ignored), as ``ConvDictionary.atom_norms`` measures whole filters: a
        molecule at the border of the signal, where padding crops it, is the same atom. Stacks
        with a dense layer measure the synthesis of a unit code at the first code position.
        """
        weight = self.weight
        if all(isinstance(d, ConvDictionary) for d in self.dictionaries):
            molecules = torch.eye(self.num_atoms, dtype=weight.dtype, device=weight.device)
            molecules = molecules.view(self.num_atoms, self.num_atoms, 1, 1)  # one atom each
            for dictionary in reversed(self.dictionaries):
                molecules = conv_synthesis(molecules, dictionary.weight, dictionary.stride)
            return molecules.flatten(1).norm(dim=1)
        size = self.code_size()
        shape = (self.num_atoms, self.num_atoms, *(size if size is not None else ()))
        units = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        index = torch.arange(self.num_atoms)
        if size is None:
            units[index, index] = 1
        else:
            units[index, index, 0, 0] = 1
        return self.synthesize(units).flatten(1).norm(dim=1)

    def _code_shape(self, input_size) -> tuple[int, ...]:
        size = self.code_size()
        return (1, self.num_atoms, *(size if size is not None else ()))

    def _signal_shape(self, input_size) -> tuple[int, ...]:
        return self.dictionaries[0]._signal_shape(self.sizes[0])

    def _check_signal_shape(self, y: Tensor, name: str) -> None:
        self.dictionaries[0]._check_signal_shape(y, name)
        size = self.sizes[0]
        if size is not None and tuple(y.shape[-2:]) != size:
            raise ValueError(
                f"{name} must have the spatial size {size} of the effective dictionary, got "
                f"shape {tuple(y.shape)}"
            )

    def extra_repr(self) -> str:
        return f"layers={len(self.dictionaries)}, sizes={self.sizes}"

"""The summary a run prints at its end (``train.py``, ``evaluate.py``) and returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_summary", "run_summary"]


def run_summary(metrics, encoder, wall_time, checkpoint, log_dir, split) -> dict[str, Any]:
    """What a run reports: test metrics, per-layer code sparsity, wall time and its files."""
    metrics = {k: float(v) for k, v in metrics.items()}
    layers = []
    for j in range(1, getattr(encoder, "num_layers", 0) + 1):
        layers.append(
            {
                "layer": j,
                "zeros_pct": metrics.get(f"test/sparsity/layer{j}_zeros_pct"),
                "nnz": metrics.get(f"test/sparsity/layer{j}_nnz"),
            }
        )
    return {
        "split": split,
        "accuracy": metrics.get("test/acc"),
        "loss": metrics.get("test/loss"),
        "reconstruction_error": metrics.get("test/reconstruction/relative_error"),
        "sparsity": layers,
        "pursuit": getattr(encoder, "pursuit", type(encoder).__name__),
        "n_iter": getattr(encoder, "n_iter", None),
        "wall_time_s": wall_time,
        "checkpoint": checkpoint,
        "log_dir": log_dir,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary printed at the end of ``train.py`` and ``evaluate.py``.

    Args:
        summary: what :func:`~mlcsc.training.train` and :func:`~mlcsc.training.evaluate`
            return: ``split``, ``pursuit``, ``n_iter``, ``sparsity`` (one ``{"layer", "zeros_pct",
            "nnz"}`` per layer), ``wall_time_s`` and ``checkpoint`` are required; ``accuracy``
            (a fraction), ``loss``, ``reconstruction_error`` and ``log_dir`` may be ``None``
            (shown as ``n/a`` or left out). An unsupervised run adds ``objective`` (shown
            instead of the loss), ``accuracy_label``, ``dictionary_sparsity`` (% zero weights
            per layer) and ``figures``.

    Returns:
        The text: a blank line, then lines between two rules of ``=`` (no final line break).
            The accuracy is shown in percent, the relative reconstruction error is
            ``‖x − D₁⋯D_KΓ_K‖/‖x‖``, and a TensorBoard log folder comes with the command that
            opens it.

    Examples:
        >>> summary = {
        ...     "split": "test", "accuracy": 0.978, "loss": 0.0712,
        ...     "reconstruction_error": 0.41, "pursuit": "ml_fista", "n_iter": 6,
        ...     "sparsity": [{"layer": 1, "zeros_pct": 71.25, "nnz": 1180.4},
        ...                  {"layer": 2, "zeros_pct": 93.5, "nnz": None}],
        ...     "wall_time_s": 71.5, "checkpoint": "run/checkpoints/best.ckpt",
        ...     "log_dir": "run/tensorboard",
        ... }
        >>> print(format_summary(summary).strip())  # strip: it starts with a blank line
        ================================================================
        mlcsc summary (ml_fista, n_iter=6)
          test accuracy : 97.80 %
          test loss     : 0.0712
          code sparsity (% zeros, mean nnz per sample):
            Γ1: 71.25 % zeros, 1180.4 nnz
            Γ2: 93.50 % zeros, n/a nnz
          relative reconstruction error ‖x − D₁⋯D_KΓ_K‖/‖x‖ : 0.410
          wall time  : 71.5 s
          checkpoint : run/checkpoints/best.ckpt
          TensorBoard: tensorboard --logdir run/tensorboard
        ================================================================
    """

    def number(value, fmt):
        return format(value, fmt) if value is not None else "n/a"

    accuracy = summary.get("accuracy")
    label = summary.get("accuracy_label", f"{summary['split']} accuracy")
    lines = [
        "",
        "=" * 64,
        f"mlcsc summary ({summary['pursuit']}, n_iter={summary['n_iter']})",
        f"  {label} : " + (f"{100 * accuracy:.2f} %" if accuracy is not None else "n/a"),
    ]
    if summary.get("objective") is not None:
        lines.append(f"  {summary['split']} objective : {summary['objective']:.4f}")
    else:
        lines.append(f"  {summary['split']} loss     : {number(summary.get('loss'), '.4f')}")
    lines.append("  code sparsity (% zeros, mean nnz per sample):")
    for layer in summary["sparsity"]:
        lines.append(
            f"    Γ{layer['layer']}: {number(layer['zeros_pct'], '.2f')} % zeros, "
            f"{number(layer['nnz'], '.1f')} nnz"
        )
    if summary.get("dictionary_sparsity"):
        values = ", ".join(
            f"D{j}: {v:.2f} %" for j, v in enumerate(summary["dictionary_sparsity"], 1)
        )
        lines.append(f"  dictionary sparsity (% zero weights): {values}")
    if summary.get("figures"):
        lines.append(f"  figures    : {summary['figures']}")
    lines += [
        f"  relative reconstruction error ‖x − D₁⋯D_KΓ_K‖/‖x‖ : "
        f"{number(summary.get('reconstruction_error'), '.3f')}",
        f"  wall time  : {summary['wall_time_s']:.1f} s",
        f"  checkpoint : {summary['checkpoint'] or 'none saved'}",
    ]
    log_dir = summary.get("log_dir")
    if log_dir and "tensorboard" in str(log_dir):
        lines.append(f"  TensorBoard: tensorboard --logdir {log_dir}")
    elif log_dir:
        lines.append(f"  logs       : {log_dir}")
    lines.append("=" * 64)
    return "\n".join(lines)

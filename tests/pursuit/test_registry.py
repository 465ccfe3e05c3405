"""The pursuit contract: a registered pursuit runs in MLCSC with what it declares."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mlcsc_models import SIZE, SPECS

from mlcsc import MLCSC
from mlcsc.pursuit import (
    PURSUITS,
    ista,
)

pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- the pursuit contract


def test_a_registered_pursuit_runs_in_mlcsc_with_what_it_declares():
    from mlcsc.pursuit import LayerParameters, Pursuit, register_pursuit
    from mlcsc.pursuit.base import forward_pass, gradient_step

    @register_pursuit("test_last_layer_ista")
    class LastLayerISTA(Pursuit):
        """Forward pass, then ISTA steps on the deepest layer alone."""

        step_rules = ("layer",)
        untied = "never"
        parametrizations = ("normalized",)

        def run(self, layers: LayerParameters, x, n_iter):
            codes = forward_pass(layers, x)
            last = layers.num_layers - 1
            scale = layers.step_threshold_scales(compound=False)[last]  # c_K·β_K
            for _ in range(n_iter):
                codes[-1] = gradient_step(layers, last, codes[-1], codes[-2], scale)
            return codes

    try:
        model = MLCSC(2, SPECS, pursuit="test_last_layer_ista", n_iter=40).double().eval()
        assert model.step_rule == "layer" and model.analysis_dictionaries is None
        x = torch.randn(2, 2, *SIZE, dtype=torch.float64)
        codes = model(x, return_all=True)
        assert (model.lipschitz_constants > 0).all()  # the layer rule's estimates were made
        # the deepest code solves its layer's BP problem, as layered BP's last layer does
        expected = ista(
            model.dictionaries[2],
            codes[1].detach(),
            model.thresholds[2].detach(),
            40,
            tol=0.0,
            x0=F.relu(
                model.dictionaries[2].analyze(codes[1]) - model.thresholds[2].view(1, -1, 1, 1)
            ).detach(),
            nonneg=True,
            step=float(model.steps()[2].detach()),
        )
        torch.testing.assert_close(codes[-1].detach(), expected)
        with pytest.raises(ValueError, match="cannot use untied filters"):
            MLCSC(2, SPECS, pursuit="test_last_layer_ista", untied=True)
        with pytest.raises(ValueError, match="does not support step_rule 'chain'"):
            MLCSC(2, SPECS, pursuit="test_last_layer_ista", step_rule="chain")
        with pytest.raises(ValueError, match="already registered"):
            register_pursuit("test_last_layer_ista")(LastLayerISTA)
    finally:
        PURSUITS.pop("test_last_layer_ista")


def test_register_pursuit_rejects_invalid_declarations():
    from mlcsc.pursuit import Pursuit, register_pursuit

    class BadRule(Pursuit):
        step_rules = ("global",)

    with pytest.raises(ValueError, match="step_rules must be a subset of"):
        register_pursuit("test_bad_rule")(BadRule)
    with pytest.raises(ValueError, match="expects a Pursuit subclass"):
        register_pursuit("test_function")(lambda *args: None)
    assert "test_bad_rule" not in PURSUITS and "test_function" not in PURSUITS

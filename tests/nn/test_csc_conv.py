"""CSCConv2d: nn.Conv2d's constructor and shapes, FISTA's codes; replace_conv2d on any model."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlcsc import ConvDictionary
from mlcsc.nn import CSCConv2d, replace_conv2d
from mlcsc.pursuit import bp_objective, fista

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "size"),
    [(3, 1, 1, 8), (3, 2, 1, 9), (1, 2, 0, 8), (7, 2, 3, 16), (5, 1, 0, 7), (3, 3, 2, 10)],
)
def test_output_shape_is_that_of_conv2d(kernel, stride, padding, size):
    x = torch.randn(2, 3, size, size)
    layer = CSCConv2d(3, 6, kernel, stride=stride, padding=padding, n_iter=2)
    conv = nn.Conv2d(3, 6, kernel, stride=stride, padding=padding)
    assert layer(x).shape == conv(x).shape
    assert layer.weight.shape == conv.weight.shape


@pytest.mark.parametrize("nonnegative", [False, True])
def test_no_iteration_is_a_convolution_and_a_threshold(nonnegative):
    torch.manual_seed(0)
    x = torch.randn(2, 2, 9, 9)
    layer = CSCConv2d(2, 5, 3, stride=2, padding=1, lam=0.3, n_iter=0, nonnegative=nonnegative)
    correlations = F.conv2d(x, layer.weight, stride=2, padding=1)
    if nonnegative:
        expected = torch.relu(correlations - 0.3)
    else:
        expected = correlations.sign() * torch.relu(correlations.abs() - 0.3)
    assert torch.allclose(layer(x), expected, atol=1e-5)


@pytest.mark.parametrize("nonnegative", [False, True])
def test_unrolled_steps_solve_the_lasso_of_the_dictionary(nonnegative):
    """Many steps reach the optimum of ½‖x − DΓ‖² + λ‖Γ‖₁ that mlcsc.pursuit.fista finds."""
    torch.manual_seed(0)
    x = torch.randn(2, 2, 10, 10, dtype=torch.float64)
    layer = CSCConv2d(2, 4, 3, stride=1, padding=1, lam=0.2, n_iter=300, nonnegative=nonnegative)
    layer.double()
    dictionary = ConvDictionary(2, 4, 3, stride=1, padding=1).double()
    with torch.no_grad():
        dictionary.weight.copy_(layer.weight)
        code = layer(x)
    reference = fista(dictionary, x, lam=0.2, max_iter=3000, tol=1e-12, nonneg=nonnegative)
    ours = bp_objective(dictionary, code, x, 0.2)
    best = bp_objective(dictionary, reference, x, 0.2)
    assert torch.allclose(ours, best, rtol=1e-6)
    if nonnegative:
        assert (code >= 0).all()
    # the objective, not the code, is what is unique: with 4 codes per position for 2 signal
    # entries, FISTA's iterates at equal objective still differ by ~1e-3


def test_more_steps_lower_the_objective_and_lam_and_n_iter_change_after_training():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 12, 12)
    layer = CSCConv2d(3, 8, 3, padding=1, lam=0.1, n_iter=1)
    dictionary = ConvDictionary(3, 8, 3, padding=1)
    with torch.no_grad():
        dictionary.weight.copy_(layer.weight)
    objectives = []
    for n_iter in (0, 2, 10):
        layer.n_iter = n_iter
        with torch.no_grad():
            objectives.append(bp_objective(dictionary, layer(x), x, 0.1).mean().item())
    assert objectives[0] > objectives[1] > objectives[2]
    with torch.no_grad():
        sparse_before = (layer(x) == 0).float().mean()
        layer.lam = 0.5  # a raised test-time λ: sparser codes
        assert layer.lam == 0.5
        assert (layer(x) == 0).float().mean() > sparse_before


def test_the_dictionary_learns_and_lam_does_not():
    torch.manual_seed(0)
    layer = CSCConv2d(3, 4, 3, padding=1, bias=True, n_iter=3)
    layer(torch.randn(2, 3, 8, 8)).square().sum().backward()
    trainable = {name for name, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"coder.dictionaries.0.weight", "bias"}
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.bias.grad is not None


def test_gradcheck_through_the_unrolled_steps():
    torch.manual_seed(0)
    layer = CSCConv2d(1, 2, 3, stride=2, padding=1, lam=0.05, n_iter=3).double()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    layer(x)  # the step's norm estimate, once, before gradcheck perturbs nothing but x
    layer.eval()
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lam": -0.1}, "lam"),
        ({"n_iter": -1}, "n_iter"),
        ({"groups": 2}, "groups=1 only"),
        ({"dilation": 2}, "dilation=1 only"),
        ({"padding_mode": "reflect"}, "padding_mode='zeros' only"),
        ({"kernel_size": (3, 5)}, "same kernel_size in both directions"),
        ({"padding": "same"}, "integer padding"),
    ],
)
def test_bad_arguments_are_value_errors(arguments, message):
    options = {"kernel_size": 3, **arguments}
    with pytest.raises(ValueError, match=message):
        CSCConv2d(4, 4, **options)
    layer = CSCConv2d(4, 4, 3)
    with pytest.raises(ValueError, match="lam"):
        layer.lam = -1.0
    with pytest.raises(ValueError, match="n_iter"):
        layer.n_iter = -2


class UsersNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.dilated(self.grouped(self.block(torch.relu(self.stem(x)))))
        return self.head(x.mean(dim=(2, 3)))


def test_replace_conv2d_on_a_users_module_warns_for_what_it_leaves():
    torch.manual_seed(0)
    net = UsersNet()
    x = torch.randn(2, 3, 16, 16)
    shape = net(x).shape
    with pytest.warns(UserWarning) as caught:
        assert replace_conv2d(net, lam=0.05, n_iter=2) is net
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "left dilated" in messages[0] and "dilation=(2, 2)" in messages[0]
    assert "left grouped" in messages[1] and "groups=4" in messages[1]
    assert isinstance(net.stem, CSCConv2d) and net.stem.bias is None
    assert isinstance(net.block[0], CSCConv2d) and net.block[0].bias is not None
    assert net.block[0].stride == (2, 2) and net.stem.lam == pytest.approx(0.05)
    assert type(net.grouped) is nn.Conv2d and type(net.dilated) is nn.Conv2d
    out = net(x)
    assert out.shape == shape
    out.sum().backward()
    assert net.stem.weight.grad is not None and net.block[0].weight.grad.abs().sum() > 0


def test_replace_conv2d_with_a_predicate_and_bad_options():
    net = UsersNet()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the predicate skips the unsupported ones: no warning
        replace_conv2d(net, predicate=lambda name, conv: name == "stem")
    assert isinstance(net.stem, CSCConv2d) and type(net.block[0]) is nn.Conv2d
    untouched = UsersNet()
    with pytest.raises(ValueError, match="lam"):
        replace_conv2d(untouched, lam=-1.0)
    assert type(untouched.stem) is nn.Conv2d
    assert isinstance(replace_conv2d(nn.Conv2d(2, 3, 3)), CSCConv2d)  # a bare Conv2d


def test_replace_conv2d_on_torchvision_resnet18():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    convs = sum(type(m) is nn.Conv2d for m in model.modules())
    replace_conv2d(model, lam=0.1, n_iter=1)
    assert sum(type(m) is nn.Conv2d for m in model.modules()) == 0
    assert sum(isinstance(m, CSCConv2d) for m in model.modules()) == convs == 20
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 10)
    logits.logsumexp(dim=1).sum().backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0
    assert model.layer4[1].conv2.weight.grad.abs().sum() > 0

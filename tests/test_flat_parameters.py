"""FlatParameters and FlatAdam: one buffer per group, with torch.optim.Adam's numbers."""

import copy

import pytest
import torch
from torch import nn

from qbm_pyro.flat_parameters import FlatAdam, FlatParameters


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3))
    net.frozen = nn.Parameter(torch.ones(2), requires_grad=False)
    return net


def _groups(net):
    head = list(net[3].parameters())
    ids = {id(p) for p in head}
    return [{"params": [p for p in net.parameters() if id(p) not in ids]}, {"params": head, "lr": 0.03}]


def _loss(net, step):
    torch.manual_seed(100 + step)
    x = torch.randn(16, 5)
    return (net(x) ** 2).sum()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_flat_adam_is_torch_adam(weight_decay, fused):
    """Bit-identical parameters to torch.optim.Adam (fused, or single-tensor) after 20 steps with
    two groups (the second at another lr), and a frozen parameter that neither touches."""
    ref, flat_net = _net(), _net()
    kind = {"fused": True} if fused else {"foreach": False}
    opt_ref = torch.optim.Adam(_groups(ref), lr=0.01, weight_decay=weight_decay, **kind)
    flat = FlatParameters(_groups(flat_net))
    opt_flat = FlatAdam(flat, lr=0.01, weight_decay=weight_decay, fused=fused)
    assert opt_flat.fused is fused
    assert [b.numel() for b in flat.buffers] == [5 * 8 + 8 + 8 + 8, 8 * 3 + 3]  # the frozen one left out
    for step in range(20):
        opt_ref.zero_grad()
        _loss(ref, step).backward()
        opt_ref.step()
        opt_flat.zero_grad()
        _loss(flat_net, step).backward()
        flat.collect()
        opt_flat.step()
    for (name, a), b in zip(ref.named_parameters(), flat_net.parameters()):
        assert torch.equal(a, b), name
    assert not torch.equal(ref[0].weight, _net()[0].weight)  # it trained
    assert torch.equal(flat_net.frozen, torch.ones(2))


def test_flat_adam_state_round_trip():
    """Resuming from state_dict() continues exactly; a state for other sizes is refused."""
    nets = [_net(), _net()]
    flats = [FlatParameters(_groups(n)) for n in nets]
    opts = [FlatAdam(f, lr=0.02, weight_decay=0.01) for f in flats]
    for step in range(5):
        for net, flat, opt in zip(nets, flats, opts):
            opt.zero_grad()
            _loss(net, step).backward()
            flat.collect()
            opt.step()
    state = opts[0].state_dict()
    resumed_net = _net(3)
    resumed_net.load_state_dict(nets[0].state_dict())
    resumed_flat = FlatParameters(_groups(resumed_net))
    resumed = FlatAdam(resumed_flat, lr=0.5)  # settings come from the state
    resumed.load_state_dict(state)
    for step in range(5, 10):
        for net, flat, opt in ((nets[0], flats[0], opts[0]), (resumed_net, resumed_flat, resumed)):
            opt.zero_grad()
            _loss(net, step).backward()
            flat.collect()
            opt.step()
    for a, b in zip(nets[0].parameters(), resumed_net.parameters()):
        assert torch.equal(a, b)
    other = FlatAdam(FlatParameters([{"params": list(nn.Linear(2, 2).parameters())}]))
    with pytest.raises(ValueError, match="buffers of sizes"):
        other.load_state_dict(state)


def test_flat_gradients_survive_other_code_resetting_them():
    """module.zero_grad() (set_to_none) or a replaced .grad between steps: collect() puts the
    gradient back into the buffer, so the optimiser still sees it."""
    net = _net()
    flat = FlatParameters(_groups(net))
    opt = torch.optim.SGD(flat.groups, lr=0.1)
    before = copy.deepcopy(net.state_dict())
    flat.zero_grad()
    net.zero_grad()  # every grad is None now
    _loss(net, 0).backward()
    flat.collect()
    assert flat.buffers[0].grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(net[0].weight, before["0.weight"])
    net[0].weight.grad = torch.full_like(net[0].weight, 7.0)
    flat.collect()
    assert bool((flat.buffers[0].grad[: net[0].weight.numel()] == 7.0).all())


def test_flat_gradient_check_and_replaced_parameters():
    net = _net()
    flat = FlatParameters(_groups(net))
    flat.zero_grad()
    _loss(net, 0).backward()
    flat.collect()
    assert flat.grads_finite()
    net[3].bias.grad[0] = float("nan")
    assert not flat.grads_finite()
    flat.check()  # still in place
    net.load_state_dict(_net(1).state_dict())  # in place: fine
    flat.check()
    assert torch.equal(flat.buffers[1].detach()[-3:], _net(1)[3].bias.detach())
    net[0].weight.data = net[0].weight.data.clone()  # what module.to() does
    with pytest.raises(RuntimeError, match="replaced during training"):
        flat.check()

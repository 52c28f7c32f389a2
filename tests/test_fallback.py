"""FallbackSampler: a failing primary gives way to the fallback, with a warning."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch

from qbm_pyro.samplers.base import Sampler
from qbm_pyro.samplers.fallback import FallbackSampler, SamplerFallbackWarning


class ConstantSampler(Sampler):
    """Returns ``value`` everywhere; counts its calls."""

    def __init__(self, value: float = 0.0):
        self.value = value
        self.calls = 0

    def _sample(self, h, J, num_samples, beta):
        self.calls += 1
        return torch.full((num_samples, h.shape[0]), self.value)


class RaisingSampler(ConstantSampler):
    def _sample(self, h, J, num_samples, beta):
        self.calls += 1
        raise ConnectionError("solver unreachable")


class WrongShapeSampler(ConstantSampler):
    def sample(self, h, J, num_samples, *, beta=1.0):  # bypasses the base-class shape check
        self.calls += 1
        return torch.zeros(num_samples + 1, h.shape[0])


class SlowSampler(ConstantSampler):
    def __init__(self, release: threading.Event):
        super().__init__(1.0)
        self.release = release

    def _sample(self, h, J, num_samples, beta):
        self.calls += 1
        self.release.wait(10.0)
        return super()._sample(h, J, num_samples, beta)


H, J = torch.zeros(5), torch.zeros(5, 5)


def test_healthy_primary_answers():
    primary, fallback = ConstantSampler(1.0), ConstantSampler(0.0)
    sampler = FallbackSampler(primary, fallback, timeout=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerFallbackWarning)
        out = sampler.sample(H, J, 3)
    assert (out == 1).all() and sampler.n_fallbacks == 0 and fallback.calls == 0


def test_raising_primary_falls_back_with_warning():
    sampler = FallbackSampler(RaisingSampler(), ConstantSampler(0.0))
    with pytest.warns(SamplerFallbackWarning, match="RaisingSampler.*ConnectionError.*unreachable"):
        out = sampler.sample(H, J, 4)
    assert out.shape == (4, 5) and (out == 0).all()
    assert sampler.n_fallbacks == 1 and sampler.n_failures == 1


@pytest.mark.parametrize(
    "primary",
    [WrongShapeSampler(), ConstantSampler(0.5), ConstantSampler(float("nan"))],
    ids=["wrong-shape", "non-binary", "nan"],
)
def test_bad_samples_fall_back(primary):
    sampler = FallbackSampler(primary, ConstantSampler(1.0))
    with pytest.warns(SamplerFallbackWarning, match=type(primary).__name__):
        out = sampler.sample(H, J, 4)
    assert (out == 1).all() and sampler.n_fallbacks == 1


def test_timeout_abandons_the_call():
    release = threading.Event()
    primary = SlowSampler(release)
    sampler = FallbackSampler(primary, ConstantSampler(0.0), timeout=0.2)
    with pytest.warns(SamplerFallbackWarning, match="TimeoutError"):
        out = sampler.sample(H, J, 2)
    assert (out == 0).all()
    # the abandoned call still runs: the primary is not called again meanwhile
    with pytest.warns(SamplerFallbackWarning, match="still running"):
        sampler.sample(H, J, 2)
    assert primary.calls == 1
    release.set()
    sampler._pending.thread.join(5.0)
    fast = sampler.sample(H, J, 2)  # the primary is free and fast again
    assert (fast == 1).all() and sampler.n_fallbacks == 2


def test_max_failures_abandons_primary_for_good():
    primary = RaisingSampler()
    sampler = FallbackSampler(primary, ConstantSampler(0.0), max_failures=2)
    with pytest.warns(SamplerFallbackWarning):
        sampler.sample(H, J, 1)
    with pytest.warns(SamplerFallbackWarning, match="abandoned after 2 failures"):
        sampler.sample(H, J, 1)
    assert sampler.primary_abandoned
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerFallbackWarning)
        sampler.sample(H, J, 1)
    assert primary.calls == 2 and sampler.n_fallbacks == 3
    state = sampler.state_dict()
    assert state["n_failures"] == 2 and state["primary_abandoned"]
    other = FallbackSampler(RaisingSampler(), ConstantSampler(0.0))
    other.load_state_dict(state)
    assert other.primary_abandoned and other.n_fallbacks == 3


def test_default_fallback_is_gibbs():
    gibbs = pytest.importorskip("qbm_pyro.samplers.gibbs")
    sampler = FallbackSampler(RaisingSampler(), seed=0)
    with pytest.warns(SamplerFallbackWarning):
        out = sampler.sample(torch.randn(4), torch.randn(4, 4), 6)
    assert isinstance(sampler.fallback, gibbs.GibbsSampler)
    assert out.shape == (6, 4) and ((out == 0) | (out == 1)).all()


def test_invalid_options():
    with pytest.raises(ValueError, match="timeout"):
        FallbackSampler(ConstantSampler(), timeout=0)
    with pytest.raises(ValueError, match="max_failures"):
        FallbackSampler(ConstantSampler(), max_failures=0)

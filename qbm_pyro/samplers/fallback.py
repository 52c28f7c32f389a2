"""A sampler that gives way to a fallback when its primary backend fails.

Remote and hardware backends fail in ways a training loop should survive: the client raises,
the queue stalls, an answer comes back short or malformed. :class:`FallbackSampler` checks each
answer of the primary and, on failure, warns with :class:`SamplerFallbackWarning` and answers
from the fallback (torch Gibbs by default) instead.
"""

from __future__ import annotations

import threading
import warnings

import torch

from qbm_pyro.samplers.base import Sampler

__all__ = ["FallbackSampler", "SamplerFallbackWarning"]


class SamplerFallbackWarning(UserWarning):
    """The primary sampler raised, timed out or returned bad samples; the fallback answered."""


class _Call:
    """One primary call run in a daemon thread, so that a hung call can be abandoned."""

    def __init__(self, function, *args, **kwargs) -> None:
        self.result = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(function, args, kwargs), daemon=True, name="qbm-primary-sampler"
        )
        self.thread.start()

    def _run(self, function, args, kwargs) -> None:
        try:
            self.result = function(*args, **kwargs)
        except BaseException as error:  # handed to the caller's thread, which re-raises it
            self.error = error


class FallbackSampler(Sampler):
    """Sample with ``primary``; on failure warn and sample with ``fallback``.

    A primary call fails when it raises, runs longer than ``timeout`` seconds, or returns
    something other than a finite ``(num_samples, n)`` tensor of zeros and ones.

    Parameters
    ----------
    primary
        The preferred sampler (a QPU, a remote service...).
    fallback
        The sampler used when the primary fails. Default, built on first need:
        ``qbm_pyro.samplers.gibbs.GibbsSampler(seed=seed)``.
    timeout
        Seconds a primary call may take, or ``None`` for no limit. With a limit the call runs in
        a daemon worker thread; a call that overruns is abandoned (Python cannot stop it), and
        while it is still running the primary is not called again: later calls go to the
        fallback.
    max_failures
        After this many failures in total the primary is abandoned for good (``None``: never).
    seed
        Seed of the default fallback sampler.

    Attributes
    ----------
    n_fallbacks : int
        Calls answered by the fallback.
    n_failures : int
        Failed primary calls.
    primary_abandoned : bool
        Whether ``max_failures`` was reached.

    Examples
    --------
    >>> from qbm_pyro.samplers.dimod import DimodSampler
    >>> sampler = FallbackSampler(DimodSampler(num_sweeps=50), timeout=30.0, max_failures=3)
    """

    def __init__(
        self,
        primary: Sampler,
        fallback: Sampler | None = None,
        *,
        timeout: float | None = None,
        max_failures: int | None = None,
        seed: int | None = None,
    ) -> None:
        if timeout is not None and not float(timeout) > 0:
            raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        if max_failures is not None and int(max_failures) < 1:
            raise ValueError(f"max_failures must be a positive int or None, got {max_failures!r}")
        self.primary = primary
        self._fallback = fallback
        self.timeout = None if timeout is None else float(timeout)
        self.max_failures = None if max_failures is None else int(max_failures)
        self.seed = seed
        self.n_fallbacks = 0
        self.n_failures = 0
        self.primary_abandoned = False
        self._pending: _Call | None = None

    @property
    def fallback(self) -> Sampler:
        """The fallback sampler (the default Gibbs sampler is built on first access)."""
        if self._fallback is None:
            from qbm_pyro.samplers.gibbs import GibbsSampler

            self._fallback = GibbsSampler(seed=self.seed)
        return self._fallback

    def _sample(self, h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> torch.Tensor:
        if not self.primary_abandoned:
            try:
                out = self._call_primary(h, J, num_samples, beta)
                _check_samples(out, num_samples, h.shape[0])
                return out
            except Exception as error:  # any failure of the primary is handled the same way
                self._record_failure(error)
        self.n_fallbacks += 1
        return self.fallback.sample(h, J, num_samples, beta=beta)

    def _call_primary(self, h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> torch.Tensor:
        if self.timeout is None:
            return self.primary.sample(h, J, num_samples, beta=beta)
        if self._pending is not None and self._pending.thread.is_alive():
            raise TimeoutError("an earlier call that timed out is still running")
        call = _Call(self.primary.sample, h, J, num_samples, beta=beta)
        call.thread.join(self.timeout)
        if call.thread.is_alive():
            self._pending = call
            raise TimeoutError(f"no answer within {self.timeout:g} s (call abandoned)")
        self._pending = None
        if call.error is not None:
            raise call.error
        return call.result

    def _record_failure(self, error: Exception) -> None:
        self.n_failures += 1
        name = type(self.primary).__name__
        message = f"{name} failed ({type(error).__name__}: {error}); sampling with the fallback"
        if self.max_failures is not None and self.n_failures >= self.max_failures:
            self.primary_abandoned = True
            message += f"; {name} abandoned after {self.n_failures} failures"
        warnings.warn(message, SamplerFallbackWarning, stacklevel=4)

    def reset(self) -> None:
        """Reset both samplers; failure counts are kept (they describe the primary)."""
        self.primary.reset()
        if self._fallback is not None:
            self._fallback.reset()

    def state_dict(self) -> dict:
        """Both samplers' states and the failure counts."""
        return {
            "primary": self.primary.state_dict(),
            "fallback": None if self._fallback is None else self._fallback.state_dict(),
            "n_fallbacks": self.n_fallbacks,
            "n_failures": self.n_failures,
            "primary_abandoned": self.primary_abandoned,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.primary.load_state_dict(state["primary"])
        if state.get("fallback") is not None:
            self.fallback.load_state_dict(state["fallback"])
        self.n_fallbacks = int(state.get("n_fallbacks", 0))
        self.n_failures = int(state.get("n_failures", 0))
        self.primary_abandoned = bool(state.get("primary_abandoned", False))

    def close(self) -> None:
        """Close both samplers."""
        self.primary.close()
        if self._fallback is not None:
            self._fallback.close()


def _check_samples(out: object, num_samples: int, n: int) -> None:
    """Raise ``ValueError`` unless ``out`` is a finite ``(num_samples, n)`` tensor of 0/1."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"expected a tensor, got {type(out).__name__}")
    if tuple(out.shape) != (num_samples, n):
        raise ValueError(f"expected shape ({num_samples}, {n}), got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise ValueError("samples contain NaN or inf")
    if not ((out == 0) | (out == 1)).all():
        raise ValueError("samples are not all 0 or 1")

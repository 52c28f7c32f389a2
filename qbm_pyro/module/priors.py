"""Learned latent priors: a Boltzmann machine over the binary code, and the Gaussian twin.

:class:`BoltzmannPrior` holds the learnable ``h`` and ``J`` (full couplings, or bipartite for an
RBM, or full couplings plus hidden units of the prior's own), the sampler whose persistent
chains estimate the negative phase of ``∇ log Z``, and a cached value of ``log Z`` for ``n``
above the enumeration limit (refreshed by AIS with :meth:`BoltzmannPrior.refresh_log_z`; the
value only enters the reported loss, never the gradient).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..distributions import RBM, Boltzmann, HiddenBoltzmann
from ..distributions.hidden_boltzmann import joint_machine
from ..samplers import GibbsSampler, ParallelTemperingSampler, Sampler, default_sampler
from ..samplers.ais import AISResult, ais_log_partition, continue_ais_run

__all__ = ["BoltzmannPrior"]


class BoltzmannPrior(nn.Module):
    """Learnable Boltzmann-machine prior ``p(z) = exp(-E(z))/Z`` over ``n`` binary units.

    Parameters
    ----------
    n_latent
        Number of binary units.
    structure
        ``"full"`` (all pairs coupled), ``"rbm"`` (two halves, coupled only across) or
        ``"hidden"``: all pairs coupled plus ``n_hidden`` hidden units coupled to the code only,
        ``p(z) = Σ_u e^{-E(z, u)}/Z`` (:class:`~qbm_pyro.distributions.HiddenBoltzmann`; the
        sampler then draws the joint machine of ``n_latent + n_hidden`` units).
    n_hidden
        Hidden units of ``structure="hidden"``. Their couplings ``W`` start at small random
        values (``N(0, 0.01)``, the global torch seed): at zero every hidden unit would get the
        same gradient and they would stay identical.
    sampler
        Sampler for the negative phase; default :func:`~qbm_pyro.samplers.default_sampler`,
        persistent parallel tempering (single-chain Gibbs stays in the modes its chains start
        in once the prior has separated modes).
    num_samples
        Persistent chains used per gradient step.
    exact_max_n
        Up to this ``n``, log Z and its gradient are computed exactly by enumeration.
    coupling_bound
        ``h`` and ``J`` are clamped to ``[-bound, bound]`` by :meth:`clamp_` (kept finite).
    learnable
        ``False`` freezes ``h = J = 0``: the factorial Bernoulli(1/2) prior (for ablations).
    seed
        Seed of the default sampler.
    """

    def __init__(
        self,
        n_latent: int,
        *,
        structure: str = "full",
        n_hidden: int = 32,
        sampler: Sampler | None = None,
        num_samples: int = 256,
        exact_max_n: int = 12,
        coupling_bound: float = 10.0,
        learnable: bool = True,
        seed: int | None = 0,
    ):
        super().__init__()
        if structure not in ("full", "rbm", "hidden"):
            raise ValueError(f"structure must be 'full', 'rbm' or 'hidden', got {structure!r}")
        if structure == "hidden" and int(n_hidden) < 1:
            raise ValueError(f"a prior with hidden units needs n_hidden >= 1, got {n_hidden}")
        if structure == "rbm" and n_latent < 2:
            raise ValueError("an RBM prior needs n_latent >= 2")
        self.n_latent = n_latent
        self.structure = structure
        self.h = nn.Parameter(torch.zeros(n_latent))
        self.n_hidden = int(n_hidden) if structure == "hidden" else 0
        if structure in ("full", "hidden"):
            self.J = nn.Parameter(torch.zeros(n_latent, n_latent))
        if structure == "hidden":
            self.b = nn.Parameter(torch.zeros(self.n_hidden))
            self.W = nn.Parameter(0.01 * torch.randn(n_latent, self.n_hidden))
        elif structure == "rbm":
            self.n_visible = n_latent // 2
            self.W = nn.Parameter(torch.zeros(self.n_visible, n_latent - self.n_visible))
        if sampler is None:
            sampler = default_sampler("rbm" if structure == "rbm" else "full", seed=seed)
        self.sampler = sampler
        self.num_samples = num_samples
        self.exact_max_n = exact_max_n
        self.coupling_bound = coupling_bound
        self.register_buffer("log_z", torch.tensor(float("nan")))
        #: The last AIS run (or its continuation), the machine it targeted and the effective
        #: sample size of the last full run (for :meth:`track_log_z`; not in the state dict:
        #: :meth:`ais_state` carries it in training checkpoints).
        self._ais: tuple[AISResult, tuple[torch.Tensor, torch.Tensor], float] | None = None
        self.learnable = learnable
        #: ``True`` for a reference's prior that a query model must leave as it is
        #: (``load_query_data(freeze=True)``): :meth:`fit_moments` refuses it, training skips it.
        self.frozen = False
        if not learnable:  # the fixed factorial Bernoulli(1/2) prior of the ablation
            for p in self.parameters():
                p.requires_grad_(False)
            self.log_z.fill_(n_latent * math.log(2.0))

    def couplings(self) -> torch.Tensor:
        """The strict-upper-triangular coupling matrix ``(n, n)``."""
        if self.structure in ("full", "hidden"):
            return torch.triu(self.J, 1)
        J = self.h.new_zeros(self.n_latent, self.n_latent)
        J[: self.n_visible, self.n_visible :] = self.W
        return J

    def sampling_machine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached ``(h, J)`` of the machine the sampler draws: the code's own, or for
        ``structure="hidden"`` the joint machine over code and hidden units (the code is its first
        ``n_latent`` columns)."""
        h, J = self.h.detach(), self.couplings().detach()
        if self.structure == "hidden":
            return joint_machine(h, J, self.b.detach(), self.W.detach())
        return h, J

    def distribution(self) -> Boltzmann | HiddenBoltzmann:
        """The prior as a :class:`~qbm_pyro.distributions.Boltzmann` (unbatched), or a
        :class:`~qbm_pyro.distributions.HiddenBoltzmann` for ``structure="hidden"``.

        Above ``exact_max_n`` its log Z value is the cached one (computed by AIS on first use;
        refresh it with :meth:`refresh_log_z`)."""
        if self.n_latent > self.exact_max_n and torch.isnan(self.log_z):
            self.refresh_log_z()
        options = dict(
            sampler=self.sampler,
            num_samples=self.num_samples,
            exact_max_n=self.exact_max_n,
            log_z=None if torch.isnan(self.log_z) else self.log_z,
            validate_args=False,
        )
        if self.structure == "hidden":
            return HiddenBoltzmann(self.h, self.couplings(), self.b, self.W, **options)
        if self.structure == "rbm":
            return RBM(self.h[: self.n_visible], self.h[self.n_visible :], self.W, **options)
        return Boltzmann(self.h, self.couplings(), **options)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """Energy of binary or relaxed states ``(..., n)`` (``E(q) = E_q[E(z)]`` for probabilities);
        for ``structure="hidden"`` the free energy ``F(z)`` of the code (``p(z) = e^{-F(z)}/Z``),
        at probabilities the free energy of the point ``q``, not its average under ``q``."""
        d = self.distribution()
        return d.free_energy(z) if self.structure == "hidden" else d.energy(z)

    @torch.no_grad()
    def refresh_log_z(self, **ais_options) -> float:
        """Recompute the cached log Z (exact up to ``exact_max_n``, AIS above); returns it."""
        h, J = self.h.detach(), self.couplings().detach()
        if not self.learnable:
            return float(self.log_z)
        self._ais = None
        if self.structure == "hidden":
            if self.n_latent <= self.exact_max_n:
                d = HiddenBoltzmann(h, J, self.b.detach(), self.W.detach(), exact_max_n=self.exact_max_n)
                value = float(d.log_partition_function)
            else:  # AIS over the joint machine (its log Z is the marginal's)
                value = self._run_ais(ais_options)
            self.log_z.fill_(value)
            return value
        if not bool((J != 0).any()):  # no couplings (e.g. at initialisation): exact, factorial
            value = float(torch.nn.functional.softplus(h.double()).sum())
        elif self.n_latent <= self.exact_max_n:
            value = float(
                Boltzmann(h, J, exact_max_n=self.exact_max_n, validate_args=False).log_partition_function
            )
        else:
            value = self._run_ais(ais_options)
        self.log_z.fill_(value)
        return value

    def _run_ais(self, ais_options: dict) -> float:
        """AIS on :meth:`sampling_machine` (the joint machine with hidden units: its log Z is the
        code marginal's); the run is kept for :meth:`track_log_z`."""
        machine = tuple(t.clone() for t in self.sampling_machine())
        result = ais_log_partition(*machine, **({"n_chains": 128, "n_steps": 200, "seed": 0} | ais_options))
        self._ais = (result, machine, result.ess)
        return result.log_z

    def ais_state(self) -> dict:
        """The AIS run :meth:`track_log_z` continues, as plain tensors (``{}`` if none): for
        training checkpoints, so that a resumed run tracks log Z exactly as an uninterrupted one."""
        if self._ais is None:
            return {}
        result, (h, J), anchor_ess = self._ais
        return {
            "log_z": result.log_z,
            "stderr": result.stderr,
            "ess": result.ess,
            "anchor_ess": anchor_ess,
            "states": result.states,
            "log_weights": result.log_weights,
            "h": h,
            "J": J,
        }

    def load_ais_state(self, state: dict) -> None:
        """Restore :meth:`ais_state` (``{}``: none, the next :meth:`track_log_z` runs AIS)."""
        if not state:
            self._ais = None
            return
        machine = (state["h"], state["J"])
        if machine[0].shape[0] != state["states"].shape[1]:
            raise ValueError("the saved AIS run does not fit this prior's machine")
        values = (float(state["log_z"]), float(state["stderr"]), float(state["ess"]))
        anchor_ess = float(state["anchor_ess"])
        self._ais = (AISResult(*values, state["states"], state["log_weights"]), machine, anchor_ess)

    @torch.no_grad()
    def track_log_z(self, n_steps: int = 20, min_ess_ratio: float = 0.5) -> float:
        """Bring the cached log Z up to date after a parameter change, cheaply; returns it.

        Continues the last AIS run's chains to the current machine along a short bridge of
        ``n_steps`` Gibbs sweeps (:func:`~qbm_pyro.samplers.ais.bridge_log_partition`; a full
        run is 200) and keeps the continued run for the next call. Runs AIS afresh
        (:meth:`refresh_log_z`) when there is no run to continue, when the continued run's
        effective sample size has fallen below ``min_ess_ratio`` times the last full run's (its
        chains no longer represent the prior well enough), and up to ``exact_max_n`` units
        (exact, and cheap). Training calls it after every epoch between full AIS runs
        (``log_z_every``), so that the validation loss, and so early stopping, never uses the
        log Z of an older prior (a stale value is off by nats per cell after a few epochs).
        """
        if not self.learnable:
            return float(self.log_z)
        if self.n_latent <= self.exact_max_n or self._ais is None:
            return self.refresh_log_z()
        result, reference, anchor_ess = self._ais
        machine = tuple(t.clone() for t in self.sampling_machine())
        tracked = continue_ais_run(
            result, reference, *machine, anchor_ess=anchor_ess, min_ess_ratio=min_ess_ratio, n_steps=n_steps
        )
        if tracked is None:
            return self.refresh_log_z()
        self._ais = (tracked, machine, anchor_ess)
        self.log_z.fill_(tracked.log_z)
        return tracked.log_z

    def fit_moments(
        self, mean: torch.Tensor, second: torch.Tensor, *, n_steps: int = 2000, lr: float = 3e-3
    ) -> dict[str, float]:
        """Fit ``h`` and ``J`` by maximum likelihood to fixed target moments; returns diagnostics.

        With the encoder held fixed, the prior's part of the ELBO is the cross-entropy of the
        aggregate posterior under the prior, ``-h·m - Σ_{i<j} J_ij C_ij + log Z``, where ``m`` and
        ``C`` are the cells' mean posterior probabilities and products ``q_i q_j``: a convex
        function of ``(h, J)`` whose gradient is ``E_p[z] - m`` and ``E_p[z_i z_j] - C_ij``. Training
        follows it by stochastic steps between encoder updates, and the prior it ends with carries
        the noise of its last steps: its basins' weights, exponential in their energies, can be
        off by factors of several (mixology: a line holding 18 % of the cells had 5 % of the
        prior's mass). This finishes the fit: Adam at ``lr`` decaying as ``1 / (1 + 10 t / n_steps)``,
        the negative phase from the prior's own persistent chains if its sampler is a torch one
        (Gibbs, tempering; else, e.g. an annealer or a QPU, fresh persistent tempering on the
        CPU, so the fit spends no annealer time; exact moments up to ``exact_max_n``), and the
        parameters averaged over the second half of the steps (Polyak-Ruppert), which removes
        what is left of the sampling noise. The cached log Z is
        stale afterwards: call :meth:`refresh_log_z`.

        Parameters
        ----------
        mean
            Target ``E[z]``, ``(n,)``.
        second
            Target ``E[z zᵀ]``, ``(n, n)`` (the strict upper triangle is used).
        n_steps, lr
            Steps and initial learning rate.

        Returns
        -------
        ``{"mean_gap_before", "mean_gap_after", "pair_gap_before", "pair_gap_after"}``: the largest
        absolute difference between the prior's and the target's ``E[z_i]`` and ``E[z_i z_j]``
        before and after (from the negative phase: sampled above ``exact_max_n``).

        Raises
        ------
        ValueError
            A prior with hidden units (its positive phase is not a function of the moments), a
            fixed or frozen prior, or targets of the wrong shape, not finite or outside ``[0, 1]``.
        """
        n = self.n_latent
        if self.structure == "hidden":
            raise ValueError("fit_moments: a prior with hidden units is not fitted by its code's moments")
        if not self.learnable or self.frozen:
            raise ValueError("fit_moments: the prior is fixed (learnable=False) or frozen (a query model's)")
        device = self.h.device
        mean = torch.as_tensor(mean, dtype=torch.float64, device=device)
        second = torch.as_tensor(second, dtype=torch.float64, device=device)
        if mean.shape != (n,) or second.shape != (n, n):
            raise ValueError(
                f"fit_moments: need mean ({n},) and second ({n}, {n}), "
                f"got {tuple(mean.shape)} and {tuple(second.shape)}"
            )
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(second).all())):
            raise ValueError("fit_moments: the target moments are not finite")
        if (
            float(mean.min()) < 0
            or float(mean.max()) > 1
            or float(second.min()) < 0
            or float(second.max()) > 1
        ):
            raise ValueError("fit_moments: moments of binary units lie in [0, 1]")
        if n_steps < 2 or not lr > 0:
            raise ValueError(f"fit_moments: need n_steps >= 2 and lr > 0, got {n_steps}, {lr}")
        upper = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
        if self.structure == "rbm":
            upper = torch.zeros(n, n, dtype=torch.bool, device=device)
            upper[: self.n_visible, self.n_visible :] = True
        # thousands of calls: the prior's own chains when they are torch's, else (an annealer, a
        # QPU) persistent tempering on the CPU, so the fit spends no annealer time
        sampler = self.sampler if isinstance(self.sampler, (GibbsSampler, ParallelTemperingSampler)) else None
        sampler = sampler or default_sampler(seed=0)
        params = [self.h, self.J] if self.structure == "full" else [self.h, self.W]
        optimizer = torch.optim.Adam(params, lr=lr)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + 10.0 * t / n_steps))
        average = [torch.zeros_like(p) for p in params]
        gaps = {}
        m_p, C_p = self._model_moments(sampler, burn_in=0 if sampler is self.sampler else 200, rounds=16)
        gaps["mean_gap_before"] = float((m_p - mean).abs().max())
        gaps["pair_gap_before"] = float((C_p - second)[upper].abs().max())
        for step in range(n_steps):
            m_p, C_p = self._model_moments(sampler)
            g_J = torch.where(upper, C_p - second, torch.zeros_like(C_p))
            optimizer.zero_grad()
            self.h.grad = (m_p - mean).to(self.h.dtype)
            if self.structure == "full":
                self.J.grad = g_J.to(self.J.dtype)
            else:
                self.W.grad = g_J[: self.n_visible, self.n_visible :].to(self.W.dtype)
            optimizer.step()
            decay.step()
            self.clamp_()
            if step >= n_steps // 2:
                with torch.no_grad():
                    for a, p in zip(average, params):
                        a += p
        with torch.no_grad():
            for a, p in zip(average, params):
                p.copy_(a / (n_steps - n_steps // 2))
                p.grad = None
            self.clamp_()
        m_p, C_p = self._model_moments(sampler, burn_in=50, rounds=16)
        gaps["mean_gap_after"] = float((m_p - mean).abs().max())
        gaps["pair_gap_after"] = float((C_p - second)[upper].abs().max())
        return gaps

    @torch.no_grad()
    def _model_moments(
        self, sampler: Sampler, burn_in: int = 0, rounds: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``E_p[z]`` and ``E_p[z zᵀ]`` (float64): exact up to ``exact_max_n``, else from the
        sampler's draws (``burn_in`` calls discarded first, e.g. after a jump of the parameters;
        the draws of ``rounds`` calls pooled)."""
        h, J = self.h.detach(), self.couplings().detach()
        if self.n_latent <= self.exact_max_n:
            d = Boltzmann(h.double(), J.double(), exact_max_n=self.exact_max_n, validate_args=False)
            states = d.enumerate_support(expand=False)
            p = d.log_prob(states).exp()
            return p @ states, states.T @ (p[:, None] * states)
        for _ in range(burn_in):
            sampler.sample(h, J, self.num_samples)
        z = torch.cat([sampler.sample(h, J, self.num_samples) for _ in range(rounds)]).double()
        return z.mean(0), z.T @ z / len(z)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the prior's parameters finite and bounded (call after each optimiser step)."""
        for p in self.parameters():
            p.nan_to_num_(0.0).clamp_(-self.coupling_bound, self.coupling_bound)

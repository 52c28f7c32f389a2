"""Modality dropout (``train(modality_dropout=p)``): the encoders see a random subset of each
cell's modalities in training; the likelihood still scores all of them."""

from __future__ import annotations

import pytest
import torch

import qbm_pyro
from qbm_pyro._constants import REGISTRY_KEYS as K
from qbm_pyro.data import MinibatchLoader, setup_data
from qbm_pyro.module import MultiVAE
from qbm_pyro.module.modality_dropout import drop_modalities
from qbm_pyro.training import Trainer, TrainingConfig, recorded_config


@pytest.fixture(scope="module")
def rna_atac():
    """The bundled 100-cell RNA + ATAC pair, its registry, a small module and one minibatch."""
    mdata = qbm_pyro.datasets.pbmc_rna_atac_100()
    registry = setup_data(mdata)
    n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()}
    module = MultiVAE(n_vars, registry.n_batch, n_latent=8, n_continuous=4).eval()
    batch = next(iter(MinibatchLoader(mdata, registry, batch_size=100, seed=0)))
    return mdata, registry, module, batch


def _masks(batch, kinds, key):
    return torch.stack([batch[key(kind)].bool() for kind in kinds], -1)


def test_drop_leaves_the_batch_alone_at_zero_or_one_modality(rna_atac):
    _, _, module, batch = rna_atac
    assert drop_modalities(batch, module.n_vars, 0.0) is batch
    assert drop_modalities(batch, ["rna"], 0.9) is batch


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_drop_hides_only_what_a_cell_has_and_never_all_of_it(p):
    n, kinds = 6000, ["rna", "protein", "atac"]
    has = torch.stack(
        [torch.ones(n, dtype=torch.bool), torch.arange(n) % 3 != 0, torch.arange(n) % 2 == 0], -1
    )
    has[:7] = False  # cells with no modality stay without
    batch = {K.mask_key(kind): has[:, i].clone() for i, kind in enumerate(kinds)}
    torch.manual_seed(0)
    out = drop_modalities(batch, kinds, p)
    seen = _masks(out, kinds, K.encoder_mask_key)
    assert not (seen & ~has).any()  # never shows what a cell lacks
    assert (seen.any(-1) == has.any(-1)).all()  # every cell keeps one of its modalities
    for kind in kinds:  # the likelihood's masks are untouched
        assert torch.equal(out[K.mask_key(kind)], batch[K.mask_key(kind)])
    # a cell with exactly two: each is kept with 1 - p, plus half the time both draws hid them
    two = has.sum(-1) == 2
    assert abs(float(seen[two][has[two]].float().mean()) - (1 - p + p * p / 2)) < 0.03
    torch.manual_seed(0)
    again = drop_modalities(batch, kinds, p)
    assert all(torch.equal(again[K.encoder_mask_key(k)], out[K.encoder_mask_key(k)]) for k in kinds)


def test_encode_leaves_out_the_experts_the_encoder_mask_hides(rna_atac):
    """An encoder mask that hides a modality gives the posterior of the cells without it."""
    _, _, module, batch = rna_atac
    rna, atac = list(module.n_vars)
    hidden = dict(batch)
    hidden[K.encoder_mask_key(rna)] = batch[K.mask_key(rna)]
    hidden[K.encoder_mask_key(atac)] = torch.zeros_like(batch[K.mask_key(atac)])
    lacking = dict(batch)
    lacking[K.mask_key(atac)] = torch.zeros_like(batch[K.mask_key(atac)])
    with torch.no_grad():
        a, b, full = module.encode(hidden), module.encode(lacking), module.encode(batch)
    for key in ("logits", "loc", "scale"):
        torch.testing.assert_close(a[key], b[key])
    assert not torch.allclose(a["logits"], full["logits"])


def test_config_checks_and_records_modality_dropout():
    assert TrainingConfig().modality_dropout == 0.0
    assert TrainingConfig(modality_dropout=0.3).record()["modality_dropout"] == 0.3
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="modality_dropout"):
            TrainingConfig(modality_dropout=bad)
    old = {k: v for k, v in TrainingConfig().record().items() if k != "modality_dropout"}
    assert recorded_config(old)["modality_dropout"] == 0.0  # a checkpoint from before: none


def test_trainer_drops_modalities_in_training_steps_only(rna_atac):
    mdata, registry, _, _ = rna_atac
    n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()}
    seen = []

    class Spy(Trainer):
        def _loss(self, batch, kl_weight=1.0):
            seen.append((self.module.training, any(k.startswith("encoder_mask") for k in batch)))
            return super()._loss(batch, kl_weight)

    for p in (0.0, 0.5):
        seen.clear()
        module = MultiVAE(n_vars, registry.n_batch, n_latent=8, n_continuous=4)
        cells = torch.arange(registry.n_obs).numpy()
        config = TrainingConfig(max_epochs=1, modality_dropout=p, progress_bar=False, seed=0)
        Spy(module, mdata, registry, cells[:80], cells[80:], config).run()
        assert {flag for training, flag in seen if training} == {p > 0}
        assert {flag for training, flag in seen if not training} == {False}  # validation: all seen

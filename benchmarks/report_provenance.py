"""The "Provenance" section of BENCHMARKS.md: which code each section measured, and what was
re-run after each change of the defaults."""

from __future__ import annotations


def provenance_section() -> list[str]:
    """Which code each section measured: the record of re-runs across the changes of 2026-11/12."""
    return [
        "## Provenance: which code each section measured",
        "",
        "**Which code each section measured.** The speed section ran on the final code (the "
        "speed change of 2026-11-29: implicit relaxation gradient, flat parameter buffers with "
        "FlatAdam on torch's fused kernel, the `torch.rand` dropout mask, shape broadcasting "
        "without sympy). So did the "
        "QBM-VAE rows of the latent-quality table (`quality.json`, method `qbm`): paul15's, "
        "mixology's and CITE-seq's with torch's fused Adam kernel on the buffers (what FlatAdam now "
        "runs), a549's with FlatAdam's single-tensor update (the same update up to float rounding). "
        "The speed change leaves the model and its objective as they were "
        "and alters only random streams (dropout) and rounding, so the rest stands as measured on "
        "the code just before it (PCD-1 negative phase, the training-step changes, the root-group "
        "trajectory): the learned-prior study (every row but the `prior lr ×30` lever), the "
        "small-data section (its one-draw variant rows excepted) and the trajectories on the "
        "fitted latents. Measured on earlier code and not re-run: the other "
        "methods' rows of those tables (the Gaussian twin, binary-only, fixed-prior and PCA fits, "
        "scvi-tools baselines), training length, the hierarchical posterior, the linear probe and "
        "scib-metrics, cost, samplers, trajectories on PCA latents, and the QBM-VAE rows of "
        "reference mapping and differential expression. Each JSON's meta says which code it ran.",
        "",
        "**Since then (2026-12-02) the default negative phase is persistent parallel tempering, not "
        "PCD-1 Gibbs**, and `differential_expression`'s `proba_de` follows scvi-tools 1.4 (the "
        "larger tail). Re-run since on the tempering default (100 epochs, seeds 0-2; each fit "
        "saved once, then scored by `quality.py --reuse`): the QBM-VAE rows `qbm` of paul15, a549, "
        "mixology and CITE-seq and `qbm_cov` of mixology and CITE-seq in the latent-quality table "
        "(their seconds left out: fitted under heavy contention), the latent-representation "
        "section, the energy-landscape table and its levers (the same saved fits), and the QBM-VAE "
        "rows of reference mapping on all three splits (with a new reference-PCA row); "
        "'Does the learned prior matter?' and the prior levers were re-run on it at 40 epochs "
        "(CITE-seq 100), and the sampler sections (`samplers_modes.py`, `sampler_cost.py`) ran it "
        "too. Those fits predate the one-ELBO refactor of the loss (the same objective: "
        "`tests/test_elbo_parity.py` checks the training loss against Pyro's ELBO to 1e-6 on one "
        "set of draws; the order of random draws in training may differ). The other model-fit "
        "tables (scvi-tools comparisons aside, which do not depend on our code: training length, "
        "the hierarchical posterior, queries lacking a modality, trajectories on fitted latents, "
        "differential expression with the old two-tail `proba_de`) were trained with the Gibbs "
        "negative phase; on the trained priors measured so far Gibbs and tempering agreed "
        "(DESIGN §9). Their re-run (`nox -s bench`) is owed.",
        "",
        "**Later on 2026-12-02** the exchange step of tempering was compiled (numba; the same "
        "sampler, another random stream): the two sampler sections (`samplers_modes.py`, "
        "`sampler_cost.py`) were re-run on it. Refitted on main after the one-ELBO refactor: "
        "the QBM-VAE quality rows of mixology. The default paul15 and a549 fits were made again "
        "(main fbf88e0, before the compiled exchange) and reproduce the earlier tempering fits "
        "exactly (the same scores to 3 decimals): the landscape table was recomputed on them with "
        "the new one-cell root (`root_expand='sides'`, the default for a single root cell), and "
        "the linear probe and scib-metrics were re-scored for the QBM-VAE, scVI (refitted, "
        "scvi-tools 1.4.2) and PCA rows of mixology, paul15 and a549 (`baselines.py suite "
        "--methods qbm scvi`; the other rows are as before). The learned-prior study gained a549 "
        "seed 2 and the two-stage levers on the hybrid model. **The 40-epoch fits of the prior "
        "study are far from converged on the small sets** (mixology, seed 0, validation −ELBO per "
        "cell): the fixed-prior model 1856 after one 40-epoch call, 1841 after two 20-epoch calls "
        "(a restart), 1807 after 80 epochs; the default model 1794 after 100 epochs, 1769 after "
        "200 and 1762 at its best when early stopping ends it (313 epochs). The study's "
        "differences are between under-trained models; the latent-quality tables' 100 epochs are "
        "short of convergence there too (for every method alike).",
        "",
        "**2026-12-02: the training defaults changed** (`benchmarks/training_length.py`, "
        "its own section below). `train()` runs at most 400 epochs up to 20,000 cells "
        "(`pp.size_defaults`; scvi-tools' cap); before, 200 epochs with a quarter of them as KL "
        "warm-up (and the benchmarks' 100 with 25). **Last, the KL warm-up spans all of the "
        "epochs** (scvi-tools' schedule; the first change had it over half, with early stopping "
        "after it), so every default fit runs 400 epochs and ends in its last state. Re-run at "
        "these defaults, each method at its own package default (400 epochs on these sets for "
        "scVI and totalVI too; scVI without early stopping, totalVI with it): the training-length "
        "table at 400 epochs (QBM-VAE, scVI, totalVI; paul15, mixology, CITE-seq), the landscape "
        "rows of paul15, mixology and CITE-seq, and the learned-prior study at 400 epochs "
        "(`prior_matters_400.json`). The main table below is still the equal-length 100-epoch "
        "comparison; a549 was not re-run (a fit there takes 10-50 minutes on this machine).",
        "",
        "**Then, the same day, early stopping watches the validation −ELBO from the first epoch, "
        "the best state is kept, and the warm-up spans half of the epochs** (a549 overfits after "
        "epoch ~40 when every fit runs 400 epochs and keeps its last state; "
        "`training_length.json`, rows `from epoch 1`). Re-run at these defaults: the QBM-VAE rows "
        "of `quality_400.json` on all four sets (the first section), the landscape table on all "
        "four sets, scib-metrics of QBM-VAE, scVI and PCA on paul15, mixology and a549 with scVI "
        "refitted on a549 at 400 epochs, the training-length rows and the learned-prior study at "
        "400 epochs (`prior_matters_400.json`). Not re-run: "
        "reference mapping (100-epoch references for every method), the 100-epoch main run.",
        "",
        "**2026-12-03: the validation loss uses each epoch's own log Z, and the patience is 45.** "
        "Above the enumeration limit log Z was refreshed by AIS every 5 epochs and the epochs "
        "between validated with the last value: 1-3 nats per cell off on paul15 in mid-training, "
        "over 10 in the first epochs, as large as the differences early stopping compares (an a549 "
        "variant stopped at epoch 34 on a best epoch 4 that only a stale log Z made best). The "
        "value is now carried to every epoch's prior by continuing the last AIS run along a "
        "20-sweep bridge (within 0.2 nats of a long AIS run at every epoch of a paul15 fit). With "
        "it, patience 30 stopped paul15 and mixology earlier (one paul15 seed at epoch 182, in the "
        "warm-up; mixology batch mixing 0.713 ± 0.026 against 0.748 ± 0.013), so the patience is "
        "now scvi-tools' 45. Re-run on main 38dc0ab: the QBM-VAE rows of `quality_400.json` for "
        "paul15, mixology and a549 (the first section), their scib-metrics rows, the landscape "
        "table for those sets, and the learned-prior study's qbm, fixed-prior and Gaussian-twin "
        "rows of paul15 and mixology. CITE-seq trains without a validation set (below 1,000 "
        "cells), so neither change touches its fits. Not re-run: a549's prior-study rows (its "
        "fits moved by at most 2 epochs), the prior-LR lever rows, the training-length rows and "
        "reference mapping.",
        "",
        "**2026-12-03, later: the ATAC log-likelihood is weighted by genes per peak** "
        '(`likelihood_weights="balanced"`, the default since main 6c44009; 0.10 on a549, whose '
        "11,567 peaks outvoted its 1,185 genes). It changes only models with ATAC: a549 was "
        "refitted (3 seeds) and its QBM-VAE rows re-run in `quality_400.json`, the scib-metrics "
        "suite, the landscape table and the learned-prior study (qbm, fixed prior, Gaussian twin; "
        "all three weighted alike), and the one-root-cell study (`root_expansion.json`, with "
        "paul15 on its main 38dc0ab fits). paul15, mixology and CITE-seq fits are unchanged. "
        "Not re-run for a549: the prior-LR lever rows (they were unweighted: compare them with "
        "the unweighted rows they were measured beside), training length, the 100-epoch main "
        "run. The same day custom Pyro models' cached log Z moved from importance sampling with "
        "the negative-phase samples to the AIS bridge training uses; the speed table's custom "
        "log Z row predates it (the bridge costs ~27 ms per update at 32 units). Reference "
        "mapping's QBM-VAE rows were re-run on main f038794 (all three splits, 3 seeds, the "
        "same 100 reference and 50 query epochs): cite_5k and mixology_dropseq unchanged to "
        "the digit (below 1,000 cells no validation set, so neither the patience nor the log Z "
        "tracking touches them), paul15_shift 0.827 ± 0.005 (was 0.826 ± 0.002).",
        "",
        "**2026-12-03, last: training ends with the prior's last fit** (`prior_refit_steps=2000`: "
        "the Boltzmann prior alone fitted to convergence on the final encoder's aggregate "
        "posterior). It leaves the encoder and decoder as training left them, so every latent "
        "number above (kNN, Leiden, scib-metrics, batch mixing, trajectories, mapping) stands; it "
        "changes what depends on the prior: held-out log p(x), basins and their weights, "
        'generated cells, energies and attractors. Measured on the saved default fits in "The '
        "prior's last fit\" (paul15, mixology and a549, 3 seeds each). Re-run since with it: the "
        "learned-prior study at 400 epochs (all four sets; the fixed-prior and Gaussian-twin rows "
        "re-fitted on the same machine), the landscape table (fits /work/fitsR) and the 400-epoch "
        "levers. Not re-run: the throughput table's whole-fit ratios (the fit adds about 8 s per "
        "training call on one core; per-epoch cost unchanged).",
        "",
        "**2026-12-03, later: `tl.attractors` defaults to the prior's states at its temperature** "
        '(`method="meanfield"`: the fixed points of the mean-field equations that the cells\' '
        "posteriors flow to; graph basins for priors with hidden units), and "
        '`tl.trajectory(root="auto_energy")` roots at the least stable of those states. The '
        "landscape table and the 400-epoch levers measure all three attractor methods; the "
        "earlier landscape-lever tables and the learned-prior study's attractor rows are of "
        "the earlier methods. Fits made on this machine differ from the earlier machine's by "
        "floating point (same code, a few epochs of early stopping apart), so the study pairs "
        "only fits of one machine.",
        "",
        "**2026-12-03, last: the training objective weighs the Gaussian units' KL 3 times** "
        "(`continuous_kl_weight=3`; 1 is the plain ELBO), and the mean-field states are merged "
        "below 1 kT. Re-run at it (fits /work/fitsK, 3 seeds, one machine): the QBM-VAE rows of "
        "the first section on all four sets, their scib-metrics and PCA rows, Leiden at every "
        "resolution, the learned-prior study at 400 epochs (learned, fixed prior and Gaussian twin "
        "on all four sets; the plain-ELBO rows kept as `*_elbo` columns), the landscape table "
        "(mean-field states only), the code-separation table, the one-root-cell study and "
        "the QBM-VAE rows of reference mapping (all three splits). "
        "Re-run at it later (stop 14, main 6642c4c): differential expression (400 epochs for "
        "both models), the small-data QBM-VAE rows of paul15 and a549 (5 draws) and queries "
        "lacking a modality, the latent-representation section (the default fits' posterior "
        "parameters); new: which latent units the fits use (`active_units.py`, both "
        "settings' saved fits). "
        "Measured with the plain ELBO and not re-run: "
        "the hierarchical posterior, training length, the 100- and 200-epoch runs, and the "
        "lever tables (their `continuous_kl_weight` columns are the current default). Speed is "
        "unchanged (the same computation with other weights).",
        "",
        "**2026-12-03, stop 14: the mean-field states' barriers are taken over the minimum "
        "free-energy path** (string method) instead of the straight line, which passed several "
        "kT above the saddles, and merged by the elder rule instead of single linkage. Re-run "
        "with it: the landscape table (the same default fits, "
        "/work/fitsK; the plain ELBO's fits /work/fitsR in its note) and the landscape figure "
        "(now mixology). Computed with the straight line and not re-run: the mean-field columns of "
        "the lever tables (`prior_levers*.json`, `landscape_levers.json`) and of the learned-prior "
        "study; their states are the straight line's (more, and not kept apart by the prior's "
        "dynamics on paul15).",
        "",
        '**2026-12-03, stop 15: `root="auto_energy"` warns below a 1 kT free-energy margin** '
        "(was 0.1 kT); the pseudotimes are unchanged (the warning and `evidence['clear']` only: "
        "paul15 seed 0's 0.21 kT root now warns). New: reading the prior at other scales "
        "(`landscape_reading.py`, the same default fits, /work/fitsK), no training.",
        "",
        "**2026-12-04, stop 16: no change to the package or its defaults.** New: the size of the "
        "binary code at the defaults (`prior_levers_code_size.json`): the default's rows re-score "
        "/work/fitsK (log p(x) as in `prior_levers_400.json` to the last digit); 32 and 16 units "
        "were fitted once each (main 181add6's package code). Every other table stands as stop 15 "
        "left it.",
        "",
        '**2026-12-04, stop 17: `tl.attractors(method="greedy")` merges its code minima by the '
        "elder rule** (single linkage before), as the mean-field states and graph basins do; no "
        "default changed. Re-run with it: the landscape table on the same default fits "
        "(/work/fitsK), now with all three methods (greedy not on a549: hours of barrier search); "
        "its mean-field columns and pseudotimes reproduce stop 14's to the last digit. New in the "
        "code-size table: the Gaussian units' KL x2 with 64 and with 32 binary units, fitted once "
        "each (paul15, mixology, a549), and a two-seed probe of the KL x2 with 8 Gaussian units. "
        "Every "
        "other table stands as stop 16 left it.",
        "",
        '**2026-12-04, stop 18: `tl.attractors(method="greedy"|"anneal")` searches each code '
        "minimum's barriers to its 16 nearest minima and chains the rest** (every searched "
        "barrier matrix is now closed under chaining); on the stop-17 fits it left the mean-field "
        "and graph columns and the pseudotimes unchanged to the last digit and moved greedy's "
        "paul15 ARI from 0.386 to 0.345 (tighter barriers, same state counts). **Then the training "
        "default became `continuous_free_bits=0.5`** (the first 0.5 nats of each Gaussian unit's KL "
        "free beside the 3x weight; measured first as a lever, `prior_levers_free_bits.json`). "
        "Re-run at it (fits /work/fitsF, 3 seeds, one machine, main 6c59a01): the QBM-VAE rows of "
        "the first section on all four sets, their scib-metrics and PCA rows, Leiden at every "
        "resolution, the landscape table (all three methods), the one-root-cell study, the "
        "code-separation table (a new column), which latent units the fits use (a new setting), "
        "the QBM-VAE rows of reference mapping (all three splits) and the learned-prior study at "
        "400 epochs (learned, fixed prior and Gaussian twin at the new default). Not re-run at it: "
        "the latent-representation section, differential expression, the small-data rows and "
        "queries lacking a modality (stop 14, at continuous_kl_weight 3 without free bits), and "
        "the older tables listed above. Speed: the floor is one mean and one `where` over the "
        "Gaussian units' KL per minibatch.",
        "",
        '**2026-12-04, stop 19: `root="auto_energy"` roots at the state from which the energy '
        "falls most along the pseudotime** (each state tried as the root group; before: the "
        "prior's least stable mean-field state, else the state of highest mean energy); no "
        "training default changed then. Re-run with it: the landscape table's paul15 and a549 "
        "rows (the same fits, /work/fitsF; every other column reproduces stop 18's). Re-run at the "
        "free-bits default on the same fits: the latent-representation section and the QBM-VAE "
        "rows of differential expression. **Then the free bits began to follow the number of "
        "cells**: 0.5 nats from 1,000 cells, none below (`pp.size_defaults`). Every set of 1,000 "
        "cells or more is unchanged; below, the fits are those of continuous_kl_weight 3 alone "
        "(/work/fitsK for CITE-seq, which a refit on main 5a4699e reproduces to the last digit), "
        "so the CITE-seq rows of the first section, of the learned-prior study (qbm, fixed prior, "
        "twin), of the latent-representation section and of the active units are stop 13-14's "
        "again; the small-data rows (300 cells) are stop 14's; queries lacking a modality "
        "(200-cell references) were refitted and reproduce stop 14's to the last digit; the "
        "landscape table's CITE-seq rows were re-run on /work/fitsK and scored against its "
        "protein-gated types, with scVI's and totalVI's Leiden on them; reference mapping's "
        "QBM-VAE rows were re-run on all three splits (the paul15_shift reference trains with the "
        "free bits, its query and the other splits without). New and off by default: "
        "`train(modality_dropout=p)`, measured on the queries lacking a modality (p = 0.25, 0.5).",
        "",
        "**2026-12-04, stop 20: no default changed.** New: the landscape on a set no setting was "
        "chosen on (`pbmc_cite_1k`, its own section; the defaults and two other free-bits floors, "
        "3 seeds each, with scVI's and totalVI's Leiden). No other table was re-run: the package "
        "code of this stop changes a log message and moves two pieces into modules of their own "
        "(the checkpoint checks, `MultiVAE.normalized_expression`), the same code, so every table "
        "still describes main.",
        "",
        "**2026-12-04, stop 21: the free bits are off again at every size** (`continuous_free_bits` "
        "0 beside `continuous_kl_weight` 3, the default of stops 13-17), by a rule fixed before "
        "the fits (its own section, 'Free bits against the landscape': every set refitted with "
        "and without them on one machine, 3 seeds). That machine reproduced the saved fits of both "
        "settings on paul15 and mixology to the last digit, so the tables re-run at stop 18 are "
        "back at their stop-17 rows (git cdcac12^, the fits /work/fitsK): the QBM-VAE rows of the "
        "first section and their scib-metrics rows, Leiden at every resolution, the learned-prior "
        "study at 400 epochs, the latent-representation section, differential expression, "
        "reference mapping's QBM-VAE rows and the one-root-cell study (its trajectory code changed "
        "since only in how `auto_energy` picks a root). Which latent units the fits use and the "
        "code-separation table keep both settings, relabelled. The landscape table's paul15, "
        "mixology and a549 rows were re-run on the refits (a549's at two torch threads per fit, "
        "without the greedy search: 120+ code minima per fit); CITE-seq's are unchanged (400 cells, "
        "never trained with them). New: a549's refits scored for held-out log p(x) beside the "
        "free-bits table.",
        "",
        '**2026-12-04, stop 22: no default changed.** New: `root="auto_energy"` over several '
        "fits (`energy_key=[...]`) and its table under the landscape's one-root-cell study "
        "(`root_fits.json`: seeds 0-2 are the landscape table's paul15 and a549 fits, "
        "/work/fits21/nofb; seeds 3-5 were fitted at this stop at the same defaults on a 2-core "
        "machine). One fit's root is chosen as before, so no other table changed.",
        "",
        "**2026-12-05, stop 24: no default changed.** New: 'What the extra Leiden clusters split' "
        "(`cluster_splits.json`) and 'The prior's states against Leiden at the same count' "
        "(`states_vs_leiden.json`), on default fits refitted at this stop on a 2-core machine "
        "(/work/exp24/fitsD) beside scVI refitted there; no other table changed.",
        "",
        "**2026-12-05, stop 25: no default changed.** New: 'Reading the graph states another way' "
        "(`graph_readout.json`): stop 24's refits re-read over a grid of `method=\"graph\"`'s "
        "settings, no training; no other table changed.",
        "",
    ]

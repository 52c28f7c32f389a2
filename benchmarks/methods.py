"""Every benchmark method, named once: its key in the result files, its label in BENCHMARKS.md,
its model settings (QBM-VAE variants) and which data sets each baseline runs on.

quality.py, baselines.py, cost.py and report.py read these tables; none of them spells a method
list of its own.
"""

from __future__ import annotations

#: QBM-VAE variants and Gaussian twins fitted by quality.py: method key -> ``QBMVAE`` keyword arguments.
QBM_MODELS: dict[str, dict] = {
    "qbm": dict(prior="boltzmann", n_latent=64, n_continuous=16),
    "binary": dict(prior="boltzmann", n_latent=64, n_continuous=0),
    "gaussian": dict(prior="gaussian", n_continuous=16),
    "rbm": dict(prior="rbm", n_latent=64, n_continuous=16),
    "bernoulli": dict(prior="bernoulli", n_latent=64, n_continuous=16),
    "binary_bernoulli": dict(prior="bernoulli", n_latent=64, n_continuous=0),
    # batches to the encoders too (the default until encode_covariates=False), on batched sets
    "qbm_cov": dict(prior="boltzmann", n_latent=64, n_continuous=16, encode_covariates=True),
    "gaussian_cov": dict(prior="gaussian", n_continuous=16, encode_covariates=True),
    # the encoders see depth-normalised counts, log1p(x · n_features / library) (a lever on batch mixing)
    "qbm_depth": dict(prior="boltzmann", n_latent=64, n_continuous=16, encoder_input="depth"),
    # RNA alone on a multi-omic set (the like-for-like comparison with scVI and PCA on RNA)
    "qbm_rna": dict(prior="boltzmann", n_latent=64, n_continuous=16, modalities=["rna"]),
    "gaussian_rna": dict(prior="gaussian", n_continuous=16, modalities=["rna"]),
}

#: scvi-tools baselines fitted by baselines.py on each data set.
BASELINES: dict[str, list[str]] = {
    "mixology": ["scvi"],
    "paul15": ["scvi"],
    "a549": ["multivi", "multivi_nopen", "scvi"],
    "cite": ["totalvi", "scvi"],
}

#: Latents written by quality.py that the baselines.py suite scores beside the baselines.
SUITE_QBM_METHODS = [
    "qbm",
    "gaussian",
    "binary",
    "bernoulli",
    "rbm",
    "qbm_cov",
    "gaussian_cov",
    "qbm_rna",
    "gaussian_rna",
]

#: Label of each method in BENCHMARKS.md, in the order of its tables.
METHOD_NAMES: dict[str, str] = {
    "qbm": "QBM-VAE (64 bin + 16 Gauss, Boltzmann)",
    "qbm_cov": "QBM-VAE, batches to the encoders too",
    "qbm_rna": "QBM-VAE, RNA only",
    "qbm_depth": "QBM-VAE, depth-normalised encoder input",
    "rbm": "QBM-VAE, RBM prior",
    "bernoulli": "ablation: same, fixed Bernoulli(1/2) prior",
    "binary": "QBM-VAE, binary only (64)",
    "binary_bernoulli": "ablation: binary only (64), fixed Bernoulli(1/2) prior",
    "hierarchical_boltzmann": "two-group hierarchical posterior, Boltzmann prior",
    "hierarchical_bernoulli": "two-group hierarchical posterior, fixed Bernoulli(1/2) prior",
    "gaussian": "Gaussian twin (16)",
    "gaussian_cov": "Gaussian twin, batches to the encoders too",
    "gaussian_rna": "Gaussian twin, RNA only",
    "scvi": "scVI (10)",
    "totalvi": "totalVI (20)",
    "multivi": "MultiVI (defaults)",
    "multivi_nopen": "MultiVI (no modality penalty, lr 1e-3)",
    "pca": "PCA (30)",
}
#: Table order of the methods.
METHOD_ORDER: list[str] = list(METHOD_NAMES)
#: Variants of our own model (compared with the default ``"qbm"``, not with other methods).
OWN_VARIANTS = {"qbm", "qbm_cov", "qbm_depth", "qbm_rna", "rbm", "bernoulli", "binary", "binary_bernoulli"}
#: The Gaussian twin of each QBM-VAE setting (same encoders/decoders, Gaussian prior).
TWINS = {"qbm": "gaussian", "qbm_rna": "gaussian_rna", "qbm_cov": "gaussian_cov"}

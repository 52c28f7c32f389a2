"""The first section of ``BENCHMARKS.md``: every method at its own package defaults.

Since 2026-12-02 ``QBMVAE.train`` runs at most 400 epochs on the bundled sets, as scVI and totalVI
do at their defaults (with the KL warm-up over half of them and early stopping on the validation
-ELBO from the first epoch). The section reads the QBM-VAE rows of
``quality_400.json``, the scvi-tools rows and scib-metrics suite of ``baselines_400.json`` and the
PCA rows of ``quality.json`` (PCA does not train, so its rows hold at any epoch count), and lists
every data set × metric where another method has the higher mean.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report_tables import DATASET_NAMES, LIGHT, SUITE, losses, summarise, table

#: The package's epoch cap on the bundled sets (``pp.size_defaults``), and the result files' suffix.
DEFAULT_EPOCHS = 400
#: The suite's columns shown per data set (the totals and the clustering scores).
SUITE_SHOWN = [
    "logreg_accuracy",
    "scib_nmi",
    "scib_ari",
    "scib_bio_conservation",
    "scib_batch_correction",
    "scib_total",
]


def with_baselines(longer: Path, results: Path) -> dict:
    """A ``quality_<epochs>.json`` study with the rows (and suite) of ``baselines_<epochs>.json``."""
    study = json.loads(longer.read_text())
    same = results / longer.name.replace("quality_", "baselines_")
    if same.exists():
        baselines = json.loads(same.read_text())
        study["rows"] = study["rows"] + baselines.get("rows", [])
        study["suite"] = baselines.get("suite", [])
    return study


def defaults_section(results: Path, quality: dict | None = None) -> list[str]:
    """Markdown lines: the light protocol and scib totals at the defaults, then where we lose.

    ``quality`` is the main run's study as the report loaded it; its PCA rows join the table."""
    path = Path(results) / f"quality_{DEFAULT_EPOCHS}.json"
    if not path.exists():
        return []
    study = with_baselines(path, Path(results))
    pca = [r for r in (quality or {}).get("rows", []) if r["method"] == "pca"]
    light = summarise(study["rows"] + pca, LIGHT)
    suite = summarise(study.get("suite", []), SUITE)
    md = [
        f"## At the package defaults ({DEFAULT_EPOCHS} epochs)",
        "",
        f"Each method at its own package defaults, which on these sets means {DEFAULT_EPOCHS} epochs "
        "at most for all three (QBM-VAE with its KL warm-up over half of them and early stopping "
        "on the validation −ELBO from the first epoch, the best state kept; scVI without early "
        "stopping, totalVI with it). PCA (30 "
        "components of the log-normalised RNA) does not train. Light protocol and scib-metrics as in "
        "the sections below; mean ± sd over seeds (n). Sources: `quality_400.json`, "
        "`baselines_400.json` (its `suite` for scib), PCA from `quality.json`."
        + (f" {study['meta']['note']}" if study.get("meta", {}).get("note") else ""),
        "",
    ]
    for dataset in sorted(light, key=lambda d: list(DATASET_NAMES).index(d) if d in DATASET_NAMES else 99):
        md += [f"### {DATASET_NAMES.get(dataset, dataset)}", "", table(light, dataset, LIGHT), ""]
        if dataset in suite:
            md += [table(suite, dataset, SUITE_SHOWN), ""]
    sentences = losses(light, LIGHT, "defaults") + losses(suite, SUITE_SHOWN, "scib, defaults")
    md += ["### Where QBM-VAE does not win at the defaults", ""]
    if sentences:
        md += [
            "Every data set × metric above where another method (Gaussian twin, scvi-tools, PCA) "
            "has a higher mean than QBM-VAE (and its RNA-only fit where there is one):",
            "",
            *sentences,
            "",
        ]
    else:
        md += ["No metric where another method has a higher mean.", ""]
    return md

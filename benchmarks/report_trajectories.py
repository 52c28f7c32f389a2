"""The trajectory sections of ``BENCHMARKS.md``: on PCA latents (``trajectory.json``) and on the
fitted latents (``trajectory_models.json``)."""

from __future__ import annotations

import numpy as np

from benchmarks.methods import METHOD_NAMES, METHOD_ORDER


def _trajectory_section(traj: dict | None) -> list[str]:
    if traj is None:
        return ["_trajectory.json missing._", ""]
    out = [
        "| data set | method / representation / root | Spearman | Kendall τ |",
        "|---|---|---|---|",
    ]

    def fmt(v):
        if isinstance(v, dict):
            return f"{v['mean']:.3f} ± {v['sd']:.3f}"
        return f"{v:.3f}" if isinstance(v, int | float) else "—"

    for dataset, methods in traj.get("datasets", {}).items():
        for method, r in methods.items():
            if isinstance(r, dict) and "spearman" in r:
                out.append(f"| {dataset} | {method} | {fmt(r['spearman'])} | {fmt(r.get('kendall'))} |")
    return [*out, ""]


TRAJECTORY_METRICS = {"a549": ("spearman", "kendall"), "paul15": ("kendall_myeloid", "kendall_erythroid")}


def _trajectory_models_section(rows: list | None) -> list[str]:
    """qbm_pyro.tl.trajectory on each saved latent from the known root, vs scanpy DPT on the same
    latent; for QBM latents also the root chosen by energy and energy along pseudotime."""
    if not rows:
        return ["_trajectory_models.json missing: run `python benchmarks/trajectory_models.py`._", ""]

    def ms(values):
        v = np.asarray(values, dtype=float)
        return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"

    out = []
    for dataset, (m1, m2) in TRAJECTORY_METRICS.items():
        out += [
            f"**{dataset}** ({m1}, {m2} of pseudotime against the known time / reference lineages)",
            "",
            "| latent | n | ours, known root | scanpy DPT, same latent and root "
            "| ours, root = highest energy | energy vs pseudotime (Spearman) |",
            "|---|---|---|---|---|---|",
        ]
        for method in METHOD_ORDER:
            sel = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
            if not sel:
                continue

            def pair(key, sel=sel, metrics=(m1, m2)):
                return " / ".join(ms([r[key][m] for r in sel]) for m in metrics)

            auto = pair("auto_energy_root") if "auto_energy_root" in sel[0] else "—"
            energy = ms([r["qbm_trajectory"]["energy_spearman"] for r in sel]) if "energy" in sel[0] else "—"
            out.append(
                f"| {METHOD_NAMES.get(method, method)} | {len(sel)} | {pair('qbm_trajectory')} | "
                f"{pair('scanpy_dpt_same_latent')} | {auto} | {energy} |"
            )
        out.append("")
    return out

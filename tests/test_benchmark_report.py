"""The benchmark report: summary statistics, the "does not win" list and the result-file merging.

These run on small hand-made result files (no training): what BENCHMARKS.md says must follow from
the numbers in ``benchmarks/results/*.json``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

report = pytest.importorskip("benchmarks.report")


def _rows(method, values, dataset="paul15"):
    return [
        {"dataset": dataset, "method": method, "seed": seed, **metrics} for seed, metrics in enumerate(values)
    ]


def test_summarise_mean_and_sample_sd():
    rows = _rows("qbm", [{"knn_accuracy": 0.8}, {"knn_accuracy": 0.9}, {"knn_accuracy": float("nan")}])
    stats = report.summarise(rows, ["knn_accuracy"])["paul15"]["qbm"]["knn_accuracy"]
    mean, sd, n = stats
    assert n == 2  # the NaN row is not counted
    assert mean == pytest.approx(0.85)
    assert sd == pytest.approx(np.std([0.8, 0.9], ddof=1))


def test_report_lists_exactly_the_metrics_where_qbm_loses(tmp_path):
    rows = _rows("qbm", [{"knn_accuracy": 0.90, "ari": 0.40}, {"knn_accuracy": 0.92, "ari": 0.42}])
    rows += _rows("gaussian", [{"knn_accuracy": 0.80, "ari": 0.60}, {"knn_accuracy": 0.82, "ari": 0.62}])
    rows += _rows("bernoulli", [{"knn_accuracy": 0.95, "ari": 0.10}])  # an ablation of ours
    (tmp_path / "quality.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    text, _ = report.build(tmp_path, tmp_path)
    section = text.split("## Where the Boltzmann prior does not win: the main run")[1].split("\n## ")[0]
    others, own = section.split("### Where a variant of our own model beats the default")
    assert "paul15, ari" in others
    assert "Gaussian twin (16) 0.610 ± 0.014" in others
    assert "knn_accuracy" not in others  # QBM beats every other method there
    assert "paul15, knn_accuracy" in own and "fixed Bernoulli(1/2) prior 0.950" in own
    assert "ari" not in own
    assert "| QBM-VAE (64 bin + 16 Gauss, Boltzmann) | 2 | 0.910 ± 0.014 | 0.410 ± 0.014 |" in text


def test_scaling_table_shows_the_measured_epoch(tmp_path):
    row = {
        "n_cells": 10_000,
        "file_mb": 13.0,
        "setup_seconds": 0.1,
        "seconds_per_step": 0.02,
        "read_seconds_per_step": 0.005,
        "steps_per_epoch": 79,
        "seconds_per_epoch_extrapolated": 1.6,
        "seconds_full_epoch": 2.4,
        "rss_after_open_mb": 400.0,
        "rss_after_setup_mb": 410.0,
        "peak_rss_mb": 500.0,
        "per_cell_arrays_mb": {"anndata obs_names + obs (backed open)": 2.0, "registry.rows": 0.1},
    }
    cost = {"scaling": {"source": "test", "steps": 50, "rows": [row]}}
    lines = "\n".join(report._cost_section(cost))
    assert "then one whole epoch" in lines
    assert "| 10,000 | 13 | 0.1 | 0.020 | 0.005 | 79 | 2 | 2 | 400 | 410 | 500 | 0 | 2 |" in lines


def test_concurrent_result_writers_keep_each_others_parts(tmp_path):
    baselines = pytest.importorskip("benchmarks.baselines")
    path = tmp_path / "baselines.json"
    baselines._update(path, lambda r: r.setdefault("rows", []).append({"method": "scvi"}))
    baselines._update(path, lambda r: r.__setitem__("suite", [{"method": "pca"}]))
    baselines._update(path, lambda r: r["rows"].append({"method": "multivi"}))
    result = json.loads(path.read_text())
    assert [r["method"] for r in result["rows"]] == ["scvi", "multivi"]
    assert result["suite"] == [{"method": "pca"}]
    assert not path.with_suffix(".json.tmp").exists()


def test_de_section_means_over_seeds(tmp_path):
    de = pytest.importorskip("benchmarks.de")
    rows = [
        {"method": "wilcoxon", "seed": None, "group": "Ery", "overlap@10": 1.0, "overlap@20": 1.0},
        {
            "method": "qbm",
            "seed": 0,
            "group": "Ery",
            "overlap@10": 0.5,
            "overlap@20": 0.6,
            "marker_recall@20": 0.5,
        },
        {
            "method": "qbm",
            "seed": 1,
            "group": "Ery",
            "overlap@10": 0.7,
            "overlap@20": 0.8,
            "marker_recall@20": 1.0,
        },
        {"method": "qbm", "seed": 0, "group": "Mk", "overlap@10": 0.1, "overlap@20": 0.2},
        {"method": "qbm", "seed": 1, "group": "Mk", "overlap@10": 0.3, "overlap@20": 0.4},
    ]
    (tmp_path / "de.json").write_text(json.dumps({"meta": {"epochs": 5, "seeds": [0, 1]}, "rows": rows}))
    text, _ = report.build(tmp_path, tmp_path)
    assert "## Differential expression (benchmarks/de.py)" in text
    assert "| Ery | overlap@10 | 0.60 ± 0.14 | 1.00 |" in text
    # macro mean per seed (0.3, 0.5), then mean ± sd over seeds
    assert "| mean over types | overlap@10 | 0.40 ± 0.14 | 1.00 |" in text
    assert de.report_section(None) == []


def test_prior_matters_longer_run_gets_its_own_tables(tmp_path):
    """A second prior_matters file (a longer run) is rendered under a heading naming its epochs,
    with the paired learned-minus-fixed log p(x) and the epochs run when early stopping cut some."""
    from benchmarks import prior_matters

    meta = {"held_out": "split", "n_importance_samples": 1000, "epochs": 200}
    rows = [
        {
            "dataset": "paul15",
            "method": "qbm",
            "seed": 0,
            "marginal_ll": -10.0,
            "epochs": 200,
            "epochs_run": 150,
        },
        {
            "dataset": "paul15",
            "method": "qbm",
            "seed": 1,
            "marginal_ll": -20.0,
            "epochs": 200,
            "epochs_run": 200,
        },
        {"dataset": "paul15", "method": "bernoulli", "seed": 0, "marginal_ll": -11.0, "epochs": 200},
        {"dataset": "paul15", "method": "bernoulli", "seed": 1, "marginal_ll": -23.0, "epochs": 200},
    ]
    assert prior_matters.report_section(tmp_path, "prior_matters_200.json") == []  # no file, no section
    (tmp_path / "prior_matters_200.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    md = prior_matters.report_section(tmp_path, "prior_matters_200.json")
    assert md[0] == "### Does the learned prior matter? At 200 epochs (prior_matters_200.json)"
    assert "#### paul15" in md
    paired = next(line for line in md if line.startswith("| log p(x) minus the fixed prior's"))
    assert paired.split(" | ")[1] == f"2.000 ± {np.std([1.0, 3.0], ddof=1):.3f}"  # +1 and +3 by seed
    assert any(line.startswith("| epochs run") for line in md)
    rows[0]["epochs_run"] = 200  # all ran their full length: no such row
    (tmp_path / "prior_matters_200.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    md = prior_matters.report_section(tmp_path, "prior_matters_200.json")
    assert not any(line.startswith("| epochs run") for line in md)


def test_suite_rows_of_some_methods_replace_only_theirs():
    """`baselines.py suite --methods qbm scvi` re-scores those methods (and PCA) and keeps the rest."""
    baselines = pytest.importorskip("benchmarks.baselines")
    old = [
        {"dataset": "paul15", "method": m, "seed": 0, "v": "old"} for m in ("qbm", "scvi", "pca", "gaussian")
    ] + [{"dataset": "a549", "method": "qbm", "seed": 0, "v": "old"}]
    new = [{"dataset": "paul15", "method": m, "seed": 0, "v": "new"} for m in ("qbm", "scvi", "pca")]
    some = baselines.merge_suite_rows(old, "paul15", new, methods=["qbm", "scvi"])
    assert {(r["dataset"], r["method"]): r["v"] for r in some} == {
        ("paul15", "qbm"): "new",
        ("paul15", "scvi"): "new",
        ("paul15", "pca"): "new",
        ("paul15", "gaussian"): "old",
        ("a549", "qbm"): "old",
    }
    # without --methods the data set's rows are all replaced (a method not scored now is dropped)
    every = baselines.merge_suite_rows(old, "paul15", new)
    assert sorted((r["dataset"], r["method"]) for r in every) == [
        ("a549", "qbm"),
        ("paul15", "pca"),
        ("paul15", "qbm"),
        ("paul15", "scvi"),
    ]


def test_training_length_section_orders_variants_and_averages_seeds(tmp_path):
    """benchmarks/training_length.py: one row per ``E:W`` variant and stopping rule, in numeric
    order (not string order: 100 before 400; the old rule first), mean ± sd over its seeds; no
    file, no section."""
    from benchmarks import training_length

    assert training_length.parse_variant("400:200") == (400, 200)
    assert training_length.report_section(tmp_path) == []
    rows = [
        {"dataset": "paul15", "variant": "400:200", "seed": s, "ari_grid": a, "epochs_run": 330}
        for s, a in ((0, 0.4), (1, 0.6))
    ] + [{"dataset": "paul15", "variant": "100:25", "seed": 0, "ari_grid": 0.3, "epochs_run": 100}]
    rows += [
        {"dataset": "paul15", "variant": "400:200", "seed": 0, "stopping": "first_epoch", "ari_grid": 0.7}
    ]
    (tmp_path / "training_length.json").write_text(json.dumps({"meta": {"seeds": [0, 1]}, "rows": rows}))
    md = training_length.report_section(tmp_path)
    body = [line for line in md if line.startswith("| 100:25") or line.startswith("| 400:200")]
    assert body[0].startswith("| 100:25 | after warm-up | 1 | 100.000 | 0.300")
    sd = np.std([0.4, 0.6], ddof=1)
    assert body[1] == f"| 400:200 | after warm-up | 2 | 330.000 ± 0.000 | 0.500 ± {sd:.3f} |"
    assert body[2] == "| 400:200 | from epoch 1, best kept | 1 | — | 0.700 |"


def test_run_log_keeps_rows_across_runs_and_drops_on_request(tmp_path):
    """benchmarks/run_log.RunLog: rows appended at once survive a new process; ``drop`` forgets runs."""
    from benchmarks.run_log import RunLog

    log = RunLog(tmp_path / "q.json", ("dataset", "seed"))
    log.add({"dataset": "a", "seed": 0, "v": 1})
    log.add({"dataset": "a", "seed": 1, "v": 2})
    again = RunLog(tmp_path / "q.json", ("dataset", "seed"))
    assert ("a", 0) in again and ("a", 2) not in again
    again.drop({("a", 0)})
    assert [r["v"] for r in RunLog(tmp_path / "q.json", ("dataset", "seed")).rows] == [2]


def test_longer_fits_get_their_scib_table_from_the_baselines_file(tmp_path):
    """``quality_200.json`` beside ``baselines_200.json``: the baselines' rows join the light table
    and their ``suite`` rows give a scib table with mean ± sd over seeds. At the default 400
    epochs that table is the defaults section's, and the training-length section points to it."""
    light = _rows("qbm", [{"knn_accuracy": 0.9, "epochs_run": 200}] * 2)
    scvi = _rows("scvi", [{"knn_accuracy": 0.8, "epochs_run": 200}])
    suite = _rows("qbm", [{"scib_total": 0.84}, {"scib_total": 0.86}]) + _rows("scvi", [{"scib_total": 0.82}])
    for epochs in (200, 400):
        (tmp_path / f"quality_{epochs}.json").write_text(
            json.dumps({"meta": {"epochs": epochs}, "rows": light})
        )
        (tmp_path / f"baselines_{epochs}.json").write_text(json.dumps({"rows": scvi, "suite": suite}))
    study = report.with_baselines(tmp_path / "quality_200.json", tmp_path)
    text = "\n".join(report._training_length_section(study, {}))
    assert "### scib-metrics at 200 epochs" in text
    qbm_line = next(line for line in text.splitlines() if "scib" not in line and "0.850 ± 0.014" in line)
    assert "QBM-VAE" in qbm_line and "| 2 |" in qbm_line
    assert any("scVI" in line and "0.820" in line for line in text.splitlines())
    at_defaults = "\n".join(
        report._training_length_section(report.with_baselines(tmp_path / "quality_400.json", tmp_path), {})
    )
    assert "scib-metrics at" not in at_defaults and "At the package defaults" in at_defaults
    assert "0.850 ± 0.014" not in at_defaults
    # without suite rows there is no scib table
    (tmp_path / "baselines_200.json").write_text(json.dumps({"rows": scvi}))
    study = report.with_baselines(tmp_path / "quality_200.json", tmp_path)
    assert "scib-metrics at" not in "\n".join(report._training_length_section(study, {}))


def test_defaults_section_compares_the_400_epoch_fits_with_pca_and_lists_losses(tmp_path):
    """The first section: QBM-VAE at 400 epochs against scVI at 400 and PCA (from the main file,
    it does not train); a metric where scVI is ahead is listed, one where QBM-VAE is ahead is not,
    and the 100-epoch QBM-VAE rows of quality.json do not enter it."""
    fit = {"epochs_run": 400}
    qbm = _rows(
        "qbm", [{"knn_accuracy": 0.87, "ari": 0.50, **fit}, {"knn_accuracy": 0.86, "ari": 0.52, **fit}]
    )
    (tmp_path / "quality_400.json").write_text(json.dumps({"meta": {"epochs": 400}, "rows": qbm}))
    scvi = _rows("scvi", [{"knn_accuracy": 0.82, "ari": 0.56, **fit}])
    suite = _rows("qbm", [{"scib_total": 0.62}]) + _rows("scvi", [{"scib_total": 0.58}])
    (tmp_path / "baselines_400.json").write_text(json.dumps({"rows": scvi, "suite": suite}))
    main = _rows("pca", [{"knn_accuracy": 0.80, "ari": 0.54}]) + _rows("qbm", [{"knn_accuracy": 0.10}])
    (tmp_path / "quality.json").write_text(json.dumps({"meta": {}, "rows": main}))
    text, _ = report.build(tmp_path, tmp_path)
    section = text.split("## At the package defaults (400 epochs)")[1].split("\n## ")[0]
    assert "| QBM-VAE (64 bin + 16 Gauss, Boltzmann) | 2 | 0.865 ± 0.007 | 0.510 ± 0.014 |" in section
    assert "| PCA (30) | 1 | 0.800 | 0.540 |" in section
    losses = section.split("### Where QBM-VAE does not win at the defaults")[1]
    assert "paul15, ari (defaults)" in losses and "scVI (10) 0.560" in losses
    assert "knn_accuracy" not in losses and "scib_total" not in losses
    assert "0.100" not in section


def test_consensus_codes_share_when_majorities_agree():
    """Two groups whose units are on the same side of 1/2 share a consensus code (distance 0),
    however different their probabilities; a unit on the other side counts one."""
    from benchmarks.code_separation import consensus_distances

    probs = np.array([[0.9, 0.2, 0.6], [0.7, 0.4, 0.8], [0.6, 0.1, 0.9], [0.2, 0.3, 0.7]])
    labels = np.array(["a", "a", "b", "c"])
    assert consensus_distances(probs, labels) == {("a", "b"): 0, ("a", "c"): 1, ("b", "c"): 1}


def _landscape_run(dataset, n_states, aris, note=None):
    rows = [
        {
            "dataset": dataset,
            "seed": s,
            "n_attractors": n,
            "attractor_ari": a,
            "graph_n_attractors": n,
            "graph_attractor_ari": a,
            "leiden_ari": 0.5,
            "totalvi_leiden_ari": 0.8,
        }
        for s, (n, a) in enumerate(zip(n_states, aris, strict=True))
    ]
    stab = [{"dataset": dataset, "seeds": [0, 1], "attractor_ari": 0.25, "graph_ari": 0.5}]
    return {"meta": {"note": note} if note else {}, "rows": rows, "seed_stability": stab}


def test_free_bits_section_groups_the_settings_by_data_set(tmp_path):
    report_landscape = pytest.importorskip("benchmarks.report_landscape")
    assert report_landscape.free_bits_section(tmp_path) == []  # no run, no section
    off = _landscape_run("paul15", [2, 2], [0.5, 0.5])
    held = _landscape_run("cite1k", [2, 4], [0.4, 0.8])
    off["rows"] += held["rows"]
    (tmp_path / "landscape_free_bits_off.json").write_text(json.dumps(off))
    floor = _landscape_run("cite1k", [1, 1], [0.0, 0.0], note="one")
    (tmp_path / "landscape_free_bits_05.json").write_text(json.dumps(floor))
    lines = report_landscape.free_bits_section(tmp_path)
    assert "_one._" in lines
    rows = [line for line in lines if line.startswith("| ") and "|---" not in line][1:]
    assert [r.split(" | ")[:3] for r in rows] == [  # by data set, then in the files' order
        ["| paul15", "no free bits (the default since stop 21)", "2"],
        ["| cite1k", "no free bits (the default since stop 21)", "2"],
        ["| cite1k", "continuous_free_bits=0.5 (stops 18-20)", "2"],
    ]
    assert "| 3.000 ± 1.414 / — / 3.000 ± 1.414 | 0.600 ± 0.283 / — / 0.600 ± 0.283 |" in rows[1]
    assert rows[1].endswith("| — / — / — | 0.500 ± 0.000 / — / 0.800 ± 0.000 |")  # no cite1k seed pair in it
    assert "| 1.000 ± 0.000 / — / 1.000 ± 0.000 | 0.000 ± 0.000 / — / 0.000 ± 0.000 |" in rows[2]
    assert "| 0.250 / — / 0.500 |" in rows[2]  # each run's own seed pairs


def test_protein_gated_types_without_a_batch_column():
    import anndata as ad
    import mudata as md

    mapping = pytest.importorskip("benchmarks.mapping")
    names = ["CD3_TotalSeqB", "CD19_TotalSeqB", "CD14_TotalSeqB", "CD56_TotalSeqB", "IgG1_control_TotalSeqB"]
    x = np.full((8, 5), 2.0)
    for cell in range(8):
        x[cell, cell % 4] = 200.0  # each cell high in one marker
    prot = ad.AnnData(x)
    prot.var_names = names
    mdata = md.MuData({"prot": prot})
    assert list(mapping.cite_labels(mdata)) == ["T", "B", "monocyte", "NK"] * 2


def test_landscape_refuses_a_saved_fit_of_other_training_settings(tmp_path):
    landscape = pytest.importorskip("benchmarks.landscape")
    folder = tmp_path / "cite1k" / "seed0"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"epochs_run": 400, "train": {"continuous_free_bits": 0}}))
    (folder / "DONE").touch()
    with pytest.raises(ValueError, match="continuous_free_bits"):  # a default row must not read it
        landscape._model(None, "cite1k", 0, 400, None, {}, tmp_path, train=None)
    with pytest.raises(ValueError, match="0.25"):
        landscape._model(None, "cite1k", 0, 400, None, {}, tmp_path, train={"continuous_free_bits": 0.25})


def test_root_fits_section_lists_each_graph_seed_and_the_fits_roots(tmp_path):
    report_landscape = pytest.importorskip("benchmarks.report_landscape")
    assert report_landscape._root_fits_section(tmp_path) == []  # no run, no section

    def run(spearman, state, warned, fits=None):
        out = {"spearman": spearman, "root_state": state, "warned": warned}
        return out | ({"fit_root_states": fits} if fits else {})

    rows = [
        {
            "dataset": "a549",
            "fit_seeds": [0, 1, 2],
            "graph_seed": seed,
            "rooted": run(0.8, "S0", False),
            "one_fit": run(value, "S1", seed == 0),
            "fits": run(0.7, "S0", True, ["S0", "S1"]),
        }
        for seed, value in ((0, 0.5), (1, -0.5))
    ]
    rows.append({"dataset": "a549", "fit_seeds": [3, 4], "graph_seed": 3, "rooted": run(0.9, "S2", False)})
    (tmp_path / "root_fits.json").write_text(json.dumps({"meta": {"note": "two"}, "rows": rows}))
    lines = report_landscape._root_fits_section(tmp_path)
    assert lines[0].endswith(" two.")
    table = [line for line in lines if line.startswith("| a549")]
    assert table == [
        "| a549 | 0, 1, 2 | known root group | 0.80, 0.80 | 0.800 ± 0.000 | 0/2 | S0, S0 |",
        "| a549 | 0, 1, 2 | auto_energy, this seed's energy | 0.50, -0.50 | 0.000 ± 0.707 | 1/2 | S1, S1 |",
        "| a549 | 0, 1, 2 | auto_energy, all the fits' energies | 0.70, 0.70 | 0.700 ± 0.000 | 2/2 "
        "| S0 (S0 S1), S0 (S0 S1) |",
        "| a549 | 3, 4 | known root group | 0.90 | 0.900 | 0/1 | S2 |",
    ]


def test_eta_squared_is_the_share_of_variance_between_clusters():
    """Clusters that hold one value each explain all of it, clusters with equal means none of it;
    a cluster below the size floor is left out, and one cluster left gives NaN."""
    from benchmarks.cluster_splits import eta_squared

    values = np.r_[np.zeros(10), np.ones(10)]
    assert eta_squared(values, np.r_[["a"] * 10, ["b"] * 10]) == pytest.approx(1.0)
    assert eta_squared(values, np.tile(["a", "b"], 10)) == pytest.approx(0.0)
    # a worked case: means 0 and 2 over 10 cells each around 1, within-cluster spread 1
    mixed = np.r_[np.tile([-1.0, 1.0], 5), np.tile([1.0, 3.0], 5)]
    assert eta_squared(mixed, np.r_[["a"] * 10, ["b"] * 10]) == pytest.approx(20 / 40)
    # a 3-cell cluster is under the floor of 10: only "a" is left, so no split to measure
    assert np.isnan(eta_squared(values[:13], np.r_[["a"] * 10, ["c"] * 3]))
    assert np.isnan(eta_squared(values, np.r_[["a"] * 20]))


def test_within_label_weights_the_labels_by_their_cells():
    """Per-label measures are averaged with the labels' cell counts as weights; a label whose
    measure is NaN (one cluster) counts only in the cluster count."""
    from benchmarks.cluster_splits import within_label

    labels = np.r_[["x"] * 20, ["y"] * 30]
    clusters = np.r_[["a"] * 10, ["b"] * 10, ["c"] * 30]
    depth = np.r_[np.zeros(10), np.ones(10), np.arange(30.0)]
    out = within_label(clusters, labels, {"log_depth": depth})
    assert out["clusters_per_label"] == pytest.approx((2 * 20 + 1 * 30) / 50)
    assert out["eta2_log_depth"] == pytest.approx(1.0)  # only x has two clusters: they split it fully


def test_leiden_at_finds_the_resolution_of_a_given_cluster_count():
    """Four well-separated blobs: bisection over the resolution lands on 4 clusters, each a blob."""
    from sklearn.metrics import adjusted_rand_score

    from benchmarks.cluster_splits import leiden_at
    from qbm_pyro.metrics import neighbour_graph

    rng = np.random.default_rng(0)
    blobs = np.repeat(np.arange(4), 50)
    latent = rng.normal(size=(200, 5)) * 0.3 + 10.0 * np.eye(4, 5)[blobs]
    graph = neighbour_graph(latent, seed=0)
    clusters, resolution = leiden_at(graph, seed=0, n_clusters=4)
    assert len(set(clusters)) == 4 and adjusted_rand_score(blobs, clusters) == 1.0
    assert 0.05 <= resolution <= 5.0
    at_one, one = leiden_at(graph, seed=0)
    assert one == 1.0 and len(set(at_one)) >= 4


def test_states_vs_leiden_section_averages_each_method_over_its_fits(tmp_path):
    from benchmarks.states_vs_leiden import report_section

    rows = [
        {
            "dataset": "paul15",
            "seed": s,
            "method": "graph",
            "n_states": 4,
            "states_ari": a,
            "leiden_ari": 0.4,
            "leiden_n": 4,
            "scvi_leiden_ari": 0.5,
            "scvi_leiden_n": 4,
        }
        for s, a in enumerate([0.4, 0.6])
    ]
    (tmp_path / "states_vs_leiden.json").write_text(json.dumps({"meta": {}, "rows": rows}))
    section = "\n".join(report_section(tmp_path))
    assert "| paul15 | graph | 2 | 4.000 ± 0.000 | 0.500 ± 0.141 | 0.400 ± 0.000 | 0.500 ± 0.000 |" in section
    assert "meanfield" not in section.split("|---|")[-1]  # no row for a method without fits
    assert report_section(tmp_path / "missing") == []


def test_graph_readout_reproduces_tl_attractors_and_each_setting_from_scratch():
    import anndata as ad
    import pandas as pd

    import qbm_pyro
    from benchmarks.graph_readout import DEFAULT, readout
    from qbm_pyro.tl._energy_landscape import EnergyLandscape
    from qbm_pyro.tl._graph_attractors import cell_graph_adjacency
    from qbm_pyro.tl._graph_basins import persistence_basins, smooth_on_graph

    # two wells (codes 0...0 and 1...1) and noisy cells along the line between them: many graph minima
    n, rng = 6, np.random.default_rng(0)
    h, J = np.full(n, -(n - 1) / 2.0), np.triu(np.full((n, n), 1.0), 1)
    t = np.sort(rng.uniform(0.02, 0.98, 300))
    q = np.clip(t[:, None] + rng.normal(0, 0.08, (300, n)), 0.001, 0.999)
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(300)]))
    adata.obsm["X_qbm"], adata.uns["qbm"] = q, {"prior": {"h": h, "J": J}}
    energy = EnergyLandscape.from_boltzmann(h, J).energy(q)
    noisy = energy + rng.normal(0, 1.0, energy.size)  # many shallow graph minima
    settings = [(15, 1, 1.0), (15, 1, 0.0), (15, 3, 0.0), (15, 10, 0.5), (30, 1, 0.0), (30, 3, 2.0)]
    read = readout(q, noisy, n, 0, settings)
    assert set(read) == set(settings)
    for k, rounds, b in settings:  # the incremental averaging equals averaging from scratch
        adj = cell_graph_adjacency(q, n, k, "hellinger", 0)
        f = noisy
        for _ in range(rounds):
            f = smooth_on_graph(f, adj)
        np.testing.assert_array_equal(read[(k, rounds, b)], persistence_basins(f, adj, b))
    assert (
        len(np.unique(read[(15, 1, 0.0)])) > len(np.unique(read[(15, 10, 0.5)])) >= 1
    )  # averaging removes minima
    # the default setting on the cells' own energy is tl.attractors(method="graph")
    read = readout(q, energy, n, 0, [DEFAULT])
    qbm_pyro.tl.attractors(adata, method="graph", n_prior_samples=0, n_markers=0, seed=0)
    labels = adata.obs["qbm_attractor"].astype(str).to_numpy()
    assert DEFAULT == (15, 1, 1.0)
    assert pd.crosstab(labels, read[DEFAULT]).astype(bool).sum().eq(1).all()  # one state per basin
    assert pd.crosstab(read[DEFAULT], labels).astype(bool).sum().eq(1).all()


def test_graph_readout_section_marks_the_default_and_reads_seed_to_seed(tmp_path):
    from benchmarks.graph_readout import report_section

    def row(dataset, setting, n_states, ari, s2s):
        k, rounds, b = setting
        return {"dataset": dataset, "n_neighbors": k, "rounds": rounds, "min_barrier": b, "seeds": [0, 1]} | {
            "n_states": n_states,
            "ari": ari,
            "seed_to_seed": s2s,
            "default_matches": None,
        }

    rows = [
        row("paul15", (15, 1, 1.0), [4, 4], [0.4, 0.6], 0.66),
        row("paul15", (30, 3, 2.0), [2, 3], [0.2, 0.3], None),
        row("cite", (15, 1, 1.0), [5, 5], [0.6, 0.6], 0.9),
    ]
    (tmp_path / "graph_readout.json").write_text(json.dumps({"meta": {"note": "refits"}, "rows": rows}))
    section = "\n".join(report_section(tmp_path))
    assert (
        "| k | rounds | min barrier | paul15: states; ARI; seed to seed | cite: states; ARI; seed to seed |"
        in section
    )
    assert (
        "| **15** | **1** | **1.0** | **4.0 ± 0.0; 0.500 ± 0.141; 0.660** "
        "| **5.0 ± 0.0; 0.600 ± 0.000; 0.900** |" in section
    )
    assert "| 30 | 3 | 2.0 | 2.5 ± 0.7; 0.250 ± 0.071; — | — |" in section  # no CITE-seq row at that setting
    assert "_refits_" in section
    assert report_section(tmp_path / "missing") == []

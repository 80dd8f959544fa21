"""`blade report`: gains, tables and disagreements from hand-made comparison results."""

import argparse
import copy
import json
import subprocess
import sys

import pytest
import yaml

from pipeline import report, report_stats, report_tables
from pipeline.compare import summarise
from pipeline.config import ConfigError
from pipeline.settings import check_params
from tests.conftest import PROJECT_ROOT
from tests.test_settings import SHIPPED

METRICS = ["hit_rate@5", "mrr@5", "hit_rate@10", "mrr@10", "hit_rate@20", "mrr@20"]


def method_result(value: float, low: float, auc: float) -> dict:
    """Every ranking metric equal to ``value`` (``low`` for the low-degree bucket)."""
    overall = dict.fromkeys(METRICS, value) | {"count": 10}
    return {"overall": overall, "direction_auc": auc,
            "buckets": {"q1: d_in 0": dict.fromkeys(METRICS, low) | {"count": 4},
                        "q2: d_in 1-9": dict.fromkeys(METRICS, value) | {"count": 6},
                        "low: d_in <= 2": dict.fromkeys(METRICS, low) | {"count": 4}}}


def comparison(name: str, seeds: dict[int, dict[str, tuple[float, float, float]]]) -> dict:
    runs = [{"seed": seed, "nodes": 12, "edges": 40, "evaluated_edges": 8, "test_edges": 8,
             "seconds": 1.0, "power_law": {"d_min": 1, "alpha_hat": 2.5, "alpha_used": 2.5},
             "methods": {method: method_result(*values) for method, values in methods.items()}}
            for seed, methods in seeds.items()]
    return {"name": name, "seeds": list(seeds), "runs": runs, "summary": summarise(runs),
            "split": {"train": 0.75, "val": 0.05, "test": 0.2},
            "tuned": {"overrides": {"neighbourhood.n_max": 7, "train.learning_rate": 0.002},
                      "best_val_mrr@10": 0.31, "default_val_mrr@10": 0.29,
                      "trials": {"complete": 3, "pruned": 1}, "seconds": 12.0},
            "neighbourhood": {"alpha_multiplier": 1.0, "d_min": 1, "n_min": 2, "n_max": 10,
                              "h_max": 2, "beta": 1.0},
            "train": {"learning_rate": 0.001, "dim": 64}, "compute_seconds": 120.0,
            "environment": {"cpu": "Test CPU", "cpu_count": 2, "memory_gib": 24.0,
                            "git_commit": "abcdef1234567", "packages": {}}}


# (overall value, low-degree value, direction AUC) per method and seed
SMALL = comparison("small", {
    1: {"blade": (0.30, 0.20, 0.8), "no_adaptive": (0.50, 0.10, 0.7), "daemon": (0.20, 0.10, 0.6),
        "sage": (0.25, 0.25, 0.5), "popularity": (0.05, 0.01, 0.9)},
    2: {"blade": (0.30, 0.30, 0.8), "no_adaptive": (0.50, 0.10, 0.7), "daemon": (0.20, 0.10, 0.6),
        "sage": (0.25, 0.25, 0.5), "popularity": (0.05, 0.01, 0.9)},
})


def test_relative_gain_is_over_the_best_non_ablation_method():
    # no_adaptive (0.50) is an ablation: the best other method is sage at 0.25
    gain, best = report_stats.relative_gain(SMALL, "hit_rate@10")
    assert best == "sage" and gain == pytest.approx((0.30 - 0.25) / 0.25)
    # low-degree: BLADE's mean over the two seeds is (0.2 + 0.3) / 2 = 0.25, equal to sage's
    gain, best = report_stats.relative_gain(SMALL, "low_mrr@10")
    assert best == "sage" and gain == pytest.approx(0.0)
    # over DAEMON alone: 0.30 / 0.20 - 1 = +50% on every metric
    assert report_stats.gain_range([SMALL], "", "daemon") == pytest.approx((0.5, 0.5))
    assert report_tables.percent(0.5) == "+50.0%" and report_tables.percent(-0.125) == "-12.5%"


def test_paired_difference_is_blade_minus_daemon_seed_by_seed():
    three = comparison("three", {
        1: {"blade": (0.30, 0.2, 0.8), "daemon": (0.20, 0.1, 0.6)},
        2: {"blade": (0.30, 0.2, 0.8), "daemon": (0.40, 0.1, 0.6)},
        3: {"blade": (0.50, 0.2, 0.8), "daemon": (0.20, 0.1, 0.6)}})
    # differences +0.1, -0.1, +0.3: mean 0.1, sample std 0.2, standard error 0.2 / sqrt(3)
    difference, error, ahead, seeds = report_stats.paired_difference(three, "daemon", "mrr@10")
    assert difference == pytest.approx(0.1) and error == pytest.approx(0.2 / 3 ** 0.5)
    assert (ahead, seeds) == (2, 3)
    assert report_tables.paired_lines(three) == [
        "- BLADE minus DAEMON, paired by seed (± standard error): HR@10 +0.1000 ± 0.1155, ahead on 2 "
        "of 3 seeds; MRR@10 +0.1000 ± 0.1155, ahead on 2 of 3 seeds."]
    assert report_tables.paired_lines(comparison("alone", {1: {"blade": (0.3, 0.2, 0.8)}})) == []


def test_rows_repeated_over_seeds_pair_with_ours_on_the_same_split():
    def rows(ours, one_layer, commit="c", row_commit=None):
        return {"ours": {"best_val_mrr@10": ours, "val_direction_auc": 0.8, "git_commit": commit},
                "one layer": {"best_val_mrr@10": one_layer, "val_direction_auc": 0.7,
                              "git_commit": row_commit or commit}}
    ablation = {"dataset": "g", "seed": 1, "rows": rows(0.30, 0.35),
                "repeats": [{"seed": 2, "rows": rows(0.20, 0.15)}, {"seed": 3, "rows": rows(0.40, 0.50)},
                            {"seed": 4, "rows": rows(0.10, 0.90, row_commit="old")}]}
    # seed 4's row was trained with other code than its ours: left out. Differences +0.05, -0.05,
    # +0.10: mean 0.0333, sample std 0.0764, standard error 0.0764 / sqrt(3) = 0.0441;
    # direction AUC -0.1 on each
    differences = report_stats.seed_differences(ablation)
    assert differences["one layer"]["seeds"] == [1, 2, 3]
    assert differences["one layer"]["mrr"] == pytest.approx([0.05, -0.05, 0.10])
    lines = report_tables.seed_lines(ablation)
    assert "| one layer | 1, 2, 3 | +0.0333 ± 0.0441 | 2 of 3 | -0.1000 |" in lines
    assert report_tables.seed_lines({"dataset": "g", "seed": 1, "rows": rows(0.3, 0.35)}) == []


def test_gain_range_spans_datasets_and_metrics():
    behind = comparison("behind", {1: {"blade": (0.10, 0.10, 0.5), "sage": (0.40, 0.40, 0.5)}})
    low, high = report_stats.gain_range([SMALL, behind])
    assert low == pytest.approx(0.10 / 0.40 - 1) and high == pytest.approx(0.30 / 0.25 - 1)


def test_disagreements_name_the_method_that_beats_blade():
    lines = report_tables.disagreements([SMALL])
    # overall: no_adaptive 0.50 > 0.30 (ablations count here); direction: popularity 0.9 > 0.8
    assert "- small, HR@10: w/o LA 0.5000 beats BLADE 0.3000." in lines
    assert "- small, direction AUC: popularity 0.9000 beats BLADE 0.8000." in lines
    assert not any("low-degree" in line for line in lines)  # BLADE's 0.25 ties sage's 0.25


def test_report_renders_tables_plots_and_headline(tmp_path):
    output = tmp_path / "docs" / "report.md"
    text = report.render([SMALL], output, headline="small")
    assert output.read_text() == text
    assert (tmp_path / "docs" / "report" / "hit_rate_by_degree.png").stat().st_size > 0
    assert (tmp_path / "docs" / "report" / "overall.png").stat().st_size > 0
    assert ("- **small, all queries:** BLADE vs the best other method: HR@10 0.3000 vs 0.2500 "
            "(GraphSAGE (undirected)), +20.0%") in text
    # mean ± population std over the two seeds: BLADE's low-degree HR@5 is 0.25 ± 0.05, tied
    # with sage's 0.25 ± 0: both bold
    assert "| BLADE (tuned) | **0.2500 ± 0.0500** |" in text
    assert "| GraphSAGE (undirected) | **0.2500 ± 0.0000** |" in text
    # the best value of a column is bold: w/o LA's 0.5 overall
    assert "| w/o LA | **0.5000 ± 0.0000** |" in text
    # tuned values override params.yaml's; the others are params.yaml's
    assert "| small | 1 | 1 | 2 | 7 | 2 | 1 | 0.002 | 64 | 2.500 | 2.500 | 0.3100 | 0.2900 |" in text
    assert "Test CPU, 2 cores, 24.0 GiB RAM" in text


ABLATION = {
    "dataset": "small", "seed": 1, "val_edges": 8, "threads": 2,
    "pending": ["no target prior", "one layer"],
    "baselines": {"cooccurrence": {"val_mrr@10": 0.2, "val_hit_rate@10": 0.4, "val_direction_auc": 0.75},
                  "popularity": {"val_mrr@10": 0.01, "val_hit_rate@10": 0.02}},
    "rows": {
        "ours": {"git_commit": "abc1234", "variant": "blade", "overrides": {},
                 "best_val_mrr@10": 0.3,
                 "best_epoch": 2,
                 "untrained_val_mrr@10": 0.2, "val_mrr@10_curve": [0.25, 0.3, 0.28], "epochs": 3,
                 "seconds": 90.0, "seconds_per_epoch": 10.0, "val_direction_auc": 0.8123,
                 "val_low_mrr@10": 0.25},
        "no target prior": {"variant": "blade", "overrides": {"train.target_prior": "none"},
                            "best_val_mrr@10": 0.25, "best_epoch": 1, "untrained_val_mrr@10": 0.1,
                            "val_mrr@10_curve": [0.25, 0.2], "epochs": 2, "seconds": 30.0,
                            "seconds_per_epoch": 12.5},
    },
}


def test_report_shows_the_ablation_table_and_training_curves(tmp_path):
    output = tmp_path / "docs" / "report.md"
    text = report.render([SMALL], output, headline="small", ablations=[ABLATION])
    assert (tmp_path / "docs" / "report" / "training_curves.png").stat().st_size > 0
    # one row per choice, with its difference to ours (0.25 - 0.30) and its untrained start
    assert ("| ours | params.yaml | **0.3000** |  |  | 0.2000 | 0.2500 | 0.8123 | 2 / 3 | 10.0 | "
            "1.5 min |") in text
    # a row without a direction AUC (an older file) leaves the cell empty; trained at another
    # commit than ours, it is marked
    assert ("| no target prior (other code) | target_prior=none | 0.2500 | -0.0500 |  | 0.1000 |  |  | "
            "1 / 2 | 12.5 | 0.5 min |") in text
    assert "1 of 2 rows were trained with other code than ours" in text
    # a pending row that has no result at all is named (the stale one is already in the table)
    assert "Not trained yet (1 rows;" in text and "as a stage of its own): one layer." in text
    assert "co-occurrence MRR@10 0.2000 (HR@10 0.4000, direction AUC 0.7500)" in text


def test_main_reads_a_folder_and_names_a_broken_file(tmp_path):
    folder = tmp_path / "compare"
    folder.mkdir()
    (folder / "small.json").write_text(json.dumps(SMALL))
    args = argparse.Namespace(reports=str(folder), output=str(tmp_path / "r.md"), headline=None,
                              ablations=str(tmp_path / "no-ablations"))
    params = check_params(dict(copy.deepcopy(SHIPPED), base={"dataset": "small", "seed": 42}))
    assert report.main(params, args) == {"datasets": 1}
    assert "small, all queries" in (tmp_path / "r.md").read_text()
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        report.main(params, args)
    with pytest.raises(FileNotFoundError, match="no comparison results"):
        report.main(params, argparse.Namespace(reports=str(tmp_path / "empty"), output="x", headline=None,
                                           ablations=str(tmp_path / "no-ablations")))


def test_report_pipeline_covers_every_bundled_graph():
    """reports/dvc.yaml has a split, tune and summary stage per graph of compare.datasets and one
    stage per graph and seed of compare.seeds_per_graph, and DVC chains them into the report."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    stages = yaml.safe_load((PROJECT_ROOT / "reports" / "dvc.yaml").read_text())["stages"]
    graphs = set(params["compare"]["datasets"])
    assert set(params["compare"]["seeds_per_graph"]) == graphs
    assert {f"reports/compare/{name}.json" for name in graphs} <= set(stages["report"]["deps"])
    ablated = stages["ablate_summary"]["foreach"]
    assert {f"reports/ablation/{name}.json" for name in ablated} <= set(stages["report"]["deps"])
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "reports/dvc.yaml"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    names = {line.split()[0].removeprefix("reports/dvc.yaml:") for line in listed.splitlines()}
    for name, seeds in params["compare"]["seeds_per_graph"].items():
        assert {f"tune@{name}", f"summary@{name}"} <= names
        assert {stage for stage in names if stage.startswith(f"compare_{name}@")} == {
            f"compare_{name}@{name}-{seed}" for seed in seeds}
    dag = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot", "reports/dvc.yaml:report"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    for name, seeds in params["compare"]["seeds_per_graph"].items():
        for seed in seeds:
            stage = f"reports/dvc.yaml:compare_{name}@{name}-{seed}"
            assert f'"reports/dvc.yaml:tune@{name}" -> "{stage}"' in dag
            assert f'"{stage}" -> "reports/dvc.yaml:summary@{name}"' in dag
        assert f'"reports/dvc.yaml:summary@{name}" -> "reports/dvc.yaml:report"' in dag
    for name in ablated:  # every row of every graph is a stage, gathered by the graph's summary
        for row in params["ablation"]["rows"]:
            stage = f"reports/dvc.yaml:ablate@{name}-{row}"
            assert f'"{stage}" -> "reports/dvc.yaml:ablate_summary@{name}"' in dag
        assert f'"reports/dvc.yaml:ablate_summary@{name}" -> "reports/dvc.yaml:report"' in dag
    # every input of a comparison is code, params.yaml, data/ or a JSON file git keeps: a fresh
    # clone needs nothing re-run
    for stage in stages.values():
        for dep in stage.get("do", stage).get("deps", []):
            assert dep.split("/")[0] in ("pipeline", "models", "data", "reports"), dep


def test_report_shows_a_gpu_sweep(tmp_path):
    sweep = {"file": "reports/gpu/sweep-small-h100.json", "machine": "one H100", "commit": "abc1234",
             "seed": 42, "rows": {
                 "ours": {"variant": "blade", "overrides": {}, "val_mrr@10": 0.41875, "val_hit_rate@10": 0.7,
                          "val_low_mrr@10": 0.3455, "val_low_hit_rate@10": 0.64,
                          "untrained_val_mrr@10": 0.3593, "epochs": 14},
                 "sage 20": {"variant": "sage", "overrides": {"train.score_scale": 20},
                             "val_mrr@10": 0.3986, "val_hit_rate@10": 0.69, "val_low_mrr@10": 0.3681,
                             "val_low_hit_rate@10": 0.61, "untrained_val_mrr@10": 0.39, "epochs": 6}}}
    text = report.render([SMALL], tmp_path / "report.md", headline="small", sweeps=[sweep])
    assert "`reports/gpu/sweep-small-h100.json`: one H100, commit abc1234, seed 42" in text
    assert "| ours | params.yaml | 0.4188 | 0.7000 | 0.3455 | 0.6400 | 0.3593 | 14 |" in text
    assert "| sage 20 | variant=sage, score_scale=20 | 0.3986 |" in text


def test_readme_headline_is_copied_from_the_report_between_its_markers(tmp_path):
    output = tmp_path / "report.md"
    text = report.render([SMALL], output, headline="small")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold, typed\n{report.README_END}\nrest\n")
    assert report.update_readme(readme, text)
    updated = readme.read_text()
    assert "old, typed" not in updated and updated.startswith("intro\n") and updated.endswith("rest\n")
    block = updated.split(report.README_START)[1].split(report.README_END)[0]
    assert "**small, all queries:** BLADE vs the best other method" in block
    assert "**small, direction AUC:**" in block and "## Setup" not in block
    unmarked = tmp_path / "OTHER.md"
    unmarked.write_text("no markers\n")
    assert not report.update_readme(unmarked, text) and unmarked.read_text() == "no markers\n"


def test_rows_of_commits_that_changed_no_code_count_as_the_same_code(tmp_path, monkeypatch):
    """A commit that only adds results or edits the report's files keeps a row's code; one that
    edits models/ does not."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text("x = 1\n")
    git("add", "-A"), git("commit", "-qm", "code")
    trained = git("rev-parse", "HEAD")
    (tmp_path / "results.json").write_text("{}\n")
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "report_notes.md").write_text("notes\n")  # read by the report only
    git("add", "-A"), git("commit", "-qm", "results and report notes only")
    results_only = git("rev-parse", "HEAD")
    (tmp_path / "models" / "m.py").write_text("x = 2\n")
    git("add", "-A"), git("commit", "-qm", "code changed")
    code_changed = git("rev-parse", "HEAD")
    monkeypatch.chdir(tmp_path)
    ours = {"git_commit": trained}
    assert report_stats.same_code({"git_commit": results_only}, ours)
    assert not report_stats.same_code({"git_commit": code_changed}, ours)
    assert not report_stats.same_code({"git_commit": "f" * 40}, ours)  # not in this repository
    assert not report_stats.same_code({"code": "2c24b1222dab"}, ours)  # an older row's digest

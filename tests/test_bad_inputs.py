"""The bad-input table: every malformed edge list, query file and parameter file a user may hand
the CLI ends in one line naming the file (and line, byte or key) and what was expected, exit
status 2, and nothing written."""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import re

import numpy as np
import pytest
import yaml

from pipeline import cli
from tests.test_settings import SHIPPED


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


ADJ = dict(adj_indices=np.array([0]), adj_indptr=np.array([0, 1]), adj_shape=np.array([1, 1]))

# name: (files, blade arguments, expected message after "blade STAGE: error: " as a regex)
EDGE_LISTS = {
    "missing file": ({}, "nothere.txt", r"nothere\.txt: file not found"),
    "empty file": ({"e.txt": b""}, "e.txt", r"e\.txt: empty"),
    "only comments": ({"e.txt": b"# a\n# b\n"}, "e.txt", r"e\.txt: empty"),
    "snap line with one column": ({"e.txt": b"1 2\n3\n"}, "e.txt",
                                  r"e\.txt:2: expected 2 whitespace-separated columns .*found 1"),
    "snap line with three columns": ({"e.txt": b"1 2\n3 4 5\n"}, "e.txt",
                                     r"e\.txt:2: expected 2 whitespace-separated columns .*found 3"),
    "non-numeric snap id": ({"e.txt": b"1 2\nB00X 4\n"}, "e.txt",
                            r"e\.txt:2: expected integer node ids .*a non-integer id 'B00X'"),
    "id above int64": ({"e.txt": b"99999999999999999999999 1\n88888888888888888888888 2\n"}, "e.txt",
                       r"e\.txt:1: expected integer node ids in int64 .*outside int64"),
    "float-looking id": ({"e.txt": b"1 2\n3.0 4\n"}, "e.txt", r"e\.txt:2: .*a non-integer id '3\.0'"),
    "exponent id": ({"e.txt": b"1 2\n1e3 4\n"}, "e.txt", r"e\.txt:2: .*a non-integer id '1e3'"),
    "csv row with an extra field": ({"e.csv": b"source,target\nA,B,X\n"}, "e.csv",
                                    r"e\.csv:2: expected 2 fields separated by ',', as in the header; "
                                    r"found 3"),
    "csv row with a missing field": ({"e.csv": b"source,target\nA,B\nC\n"}, "e.csv",
                                     r"e\.csv:3: expected a value in both 'source' and 'target'"),
    "csv without the named columns": ({"e.csv": b"from,to\nA,B\n"}, "e.csv",
                                      r"e\.csv:1: header must name the source and target columns"),
    "undecodable csv": ({"e.csv": b"source,target\nA,B\n\xff,C\n"}, "e.csv",
                        r"e\.csv:3: byte 18 \(b'\\xff'\) is not UTF-8"),
    "undecodable snap": ({"e.txt": b"1 2\n3 \xe9\n"}, "e.txt", r"e\.txt:2: byte 6 .* is not UTF-8"),
    "gzip without .gz": ({"e.txt": gzip.compress(b"1 2\n")}, "e.txt",
                         r"e\.txt: gzip-compressed, but the name does not end in \.gz"),
    ".gz that is not gzip": ({"e.txt.gz": b"1 2\n"}, "e.txt.gz", r"named \.gz but not gzip-compressed"),
    "bzip2 file": ({"e.csv": bz2.compress(b"source,target\nA,B\n")}, "e.csv",
                   r"e\.csv: bzip2-compressed; expected plain text or gzip"),
    "unknown suffix": ({"e.xyz": b"1 2\n"}, "e.xyz", r"e\.xyz: unknown edge-list format '\.xyz'"),
    "npz with an object array": ({"g.npz": _npz(adj_data=np.array([object()], dtype=object), **ADJ)},
                                 "g.npz", r"g\.npz: expected numeric adjacency/attribute arrays"),
    "npz without an adjacency": ({"g.npz": _npz(x=np.zeros(2))}, "g.npz",
                                 r"g\.npz: expected a gnn-benchmark SparseGraph"),
    "parquet that is not parquet": ({"e.parquet": b"source,target\nA,B\n"}, "e.parquet",
                                    r"e\.parquet: cannot be read as Parquet"),
    "no-break space between ids": ({"e.txt": "1 2\nC\u00a0D\n".encode()}, "e.txt",
                                   r"e\.txt:2: expected ids separated by spaces or tabs, found the "
                                   r"whitespace character U\+00A0"),
    "em space between ids": ({"e.txt": "1 2\n3\u20034\n5 6\n".encode()}, "e.txt",
                             r"e\.txt:2: .*whitespace character U\+2003"),
    "form feed between ids": ({"e.txt": b"1 2\n3\x0c4\n"}, "e.txt",
                              r"e\.txt:2: .*whitespace character U\+000C"),
    "csv header naming a column twice": ({"e.csv": b"source,target,target\nA,B,C\n"}, "e.csv",
                                         r"e\.csv:1: the header names column\(s\) 'target' more than once"),
    "a graph too small to split": ({"e.txt": b"1 2\n2 1\n"}, "e.txt",
                                   r"e\.txt: 2 edges split 0\.75/0\.05/0\.2 leave val and test "
                                   r"without edges"),
    "an id of 300 characters": ({"e.txt": b"1 2\n" + b"9" * 300 + b" 3\n"}, "e.txt",
                                r"e\.txt:2: expected ids of at most 256 characters, found one of 300"),
}

QUERY_FILES = {
    "missing query file": ({}, "q.csv", r"q\.csv: query file not found"),
    "query file of unknown type": ({"q.json": b"[1]"}, "q.json",
        r"q\.json: unknown query file type '\.json'"),
    "empty query id": ({"q.csv": b"query_id,note\nA,1\n,2\n"}, "q.csv", r"q\.csv, line 3: empty query id"),
    "no query column": ({"q.csv": b"a,b\n1,2\n"}, "q.csv", r"q\.csv: expected a 'query_id' column"),
}

MODELS = {
    "model not in the registry": "models:/nothing-here@champion",
}

PARAMETER_FILES = {
    "misspelt key": ({"train": {"dimm": 3}}, [],
        r"params\.yaml: train\.dimm: unknown key \(did you mean train\.dim\?\)"),
    "n_min above n_max": ({"neighbourhood": {"n_min": 12}}, [],
                          r"params\.yaml: neighbourhood: n_min \(12\) must be <= n_max \(10\)"),
    "split not summing to 1": ({"ingest": {"split": {"train": 0.9, "val": 0.05, "test": 0.2}}}, [],
                               r"params\.yaml: ingest\.split: train \+ val \+ test must be 1"),
    "negative beta": ({"neighbourhood": {"beta": -1}}, [],
        r"params\.yaml: neighbourhood\.beta: must be greater"),
    "unknown variant": ({"train": {"variants": ["blade", "gat"]}}, [],
        r"params\.yaml: train\.variants\.1: must be"),
    "unknown evaluate split": ({"evaluate": {"split": "trian"}}, [],
        r"params\.yaml: evaluate\.split: must be 'test' or 'val'"),
    "string where a number belongs": ({"train": {"dim": "sixty-four"}}, [],
                                      r"params\.yaml: train\.dim: must be a valid integer"),
    "set without a value": ({}, ["--set", "train.dim"], r"override 'train\.dim': expected KEY=VALUE"),
    "set of a misspelt key": ({}, ["--set", "train.dimm=3"],
        r"--set train\.dimm=3: train\.dimm: unknown key"),
    "evaluate.ks without 10": ({"evaluate": {"ks": [5, 20]}}, [],
                               r"params\.yaml: evaluate\.ks: must include 10 \(HR@10 and MRR@10"),
    "model name with '.' or '/'": ({"registry": {"model_name": "blade/amazon.v2"}}, [],
        r"params\.yaml: registry\.model_name: expected letters, digits, '-' and '_' \(a models:/ URI part\)"),
    "serving limit of 0": ({"registry": {"serving": {"max_k": 0}}}, [],
                           r"params\.yaml: registry\.serving\.max_k: must be greater than or equal to 1"),
    # params.yaml, dvc.lock and MLflow would record a password in the storage URL
    "storage password, escaped '/'": (
        {"tune": {"storage": "postgresql+psycopg2://blade:pw%2FSECRET@127.0.0.1:55432/optuna"}}, [],
        r"params\.yaml: tune\.storage: the URL carries a password; leave it out \(PostgreSQL reads "
        r"PGPASSWORD or ~/\.pgpass; .*BLADE_STORAGE_PASSWORD\)"),
    "storage password with '/'": ({"tune": {"storage": "postgresql://blade:pw/SECRET@host/optuna"}}, [],
                                  r"params\.yaml: tune\.storage: the URL carries a password"),
    "storage password as a query": (
        {"tune": {"storage": "postgresql://blade@host/optuna?password=SECRET"}}, [],
        r"params\.yaml: tune\.storage: the URL carries a password"),
    "storage password in --set": ({}, ["--set", "tune.storage=mysql://u:p@ss@host/db"],
                                  r"tune\.storage: the URL carries a password"),
}


def _project(tmp_path, files: dict[str, bytes], edges: str = "e.txt", changes: dict | None = None) -> None:
    params = copy.deepcopy(SHIPPED)
    params["ingest"]["edges"] = edges
    for name, values in (changes or {}).items():
        params[name].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)


def _refused(tmp_path, monkeypatch, capsys, argv: list[str], expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(path.name for path in tmp_path.iterdir())
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and re.fullmatch(rf"blade {argv[0]}: error: .*{expected}.*", error), error
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize("case", list(EDGE_LISTS))
def test_bad_edge_list(tmp_path, monkeypatch, capsys, case):
    files, edges, expected = EDGE_LISTS[case]
    _project(tmp_path, files, edges)
    _refused(tmp_path, monkeypatch, capsys, ["ingest"], expected)


@pytest.mark.parametrize("case", list(QUERY_FILES))
def test_bad_query_file(tmp_path, monkeypatch, capsys, case):
    files, queries, expected = QUERY_FILES[case]
    _project(tmp_path, files)
    _refused(tmp_path, monkeypatch, capsys, ["score", "--input", queries, "--output", "recs.parquet"],
             expected)


@pytest.mark.parametrize("case", list(MODELS))
def test_a_model_that_is_not_registered(tmp_path, monkeypatch, capsys, case):
    _project(tmp_path, {})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}")
    (tmp_path / "elsewhere").mkdir()
    _refused(tmp_path, monkeypatch, capsys, ["score", "--model", MODELS[case]],
             r"models:/nothing-here@champion: no such registered model or alias")


@pytest.mark.parametrize("case", list(PARAMETER_FILES))
def test_bad_parameters(tmp_path, monkeypatch, capsys, case):
    changes, argv, expected = PARAMETER_FILES[case]
    _project(tmp_path, {"e.txt": b"1 2\n"}, changes=changes)
    _refused(tmp_path, monkeypatch, capsys, ["ingest", *argv], expected)


# params.yaml text as a user may break it: (text appended to the shipped file, expected message)
_ALIASES = "\n".join(["x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                     + [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)])
BROKEN_YAML = {
    "billion laughs (nested aliases)": (_ALIASES.encode(), r"params\.yaml:\d+:\d+: expands to more "
                                        r"than 100000 values through its aliases \(\*name\)"),
    "duplicate key": (b"base:\n  seed: 1\n", r"params\.yaml:\d+:1: duplicate key 'base'"),
    "tab indentation": (b"extra:\n\tkey: 1\n", r"params\.yaml:\d+:1: found character '\\t' that cannot "
                        r"start any token"),
    "unclosed bracket": (b"extra: [1, 2\n", r"params\.yaml:\d+:1: expected ',' or '\]', but got"),
    "not UTF-8": (b"# caf\xe9\n", r"params\.yaml:\d+: byte \d+ \(b'\\xe9'\) is not UTF-8"),
}


@pytest.mark.parametrize("case", list(BROKEN_YAML))
def test_a_broken_parameters_file_is_named_with_its_line(tmp_path, monkeypatch, capsys, case):
    extra, expected = BROKEN_YAML[case]
    _project(tmp_path, {"e.txt": b"1 2\n"})
    with open(tmp_path / "params.yaml", "ab") as handle:
        handle.write(extra)
    _refused(tmp_path, monkeypatch, capsys, ["ingest"], expected)


@pytest.mark.parametrize("name", ["../../../escaped", "/tmp/escaped", ".hidden", "a/b"])
def test_a_report_name_stays_inside_the_reports_folder(tmp_path, monkeypatch, capsys, name):
    _project(tmp_path, {"e.txt": b"1 2\n2 3\n"})
    for command in ("compare", "ablate"):
        _refused(tmp_path, monkeypatch, capsys, [command, "--edges", "e.txt", "--name", name],
                 r"--name .*: expected letters, digits, '-', '_' and '\.', not starting with '\.'")


def test_coupled_values_change_together_in_one_command(tmp_path, monkeypatch, capsys):
    _project(tmp_path, {"e.txt": b"1 2\n"})
    monkeypatch.chdir(tmp_path)
    # each alone breaks the sum (0.75 + 0.1 + 0.2); together they keep it at 1
    assert cli.main(["ingest", "--set", "ingest.split.val=0.10", "--set", "ingest.split.test=0.15",
                     "--set", "ingest.edges=nothere.txt"]) == 2
    assert "nothere.txt: file not found" in capsys.readouterr().err  # got past the parameters
    _refused(tmp_path, monkeypatch, capsys, ["ingest", "--set", "ingest.split.val=0.10"],
             r"--set ingest\.split\.val=0\.10: ingest\.split: train \+ val \+ test must be 1")


def test_an_interrupted_command_is_one_line(tmp_path, monkeypatch, capsys):
    _project(tmp_path, {"e.txt": b"1 2\n"})
    monkeypatch.chdir(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.ingest.ingest", interrupted)
    assert cli.main(["ingest"]) == 130
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("blade ingest: interrupted")


def test_score_output_that_is_a_directory_is_refused_before_loading_a_model(tmp_path, monkeypatch, capsys):
    _project(tmp_path, {"q.csv": b"query_id\nA\n"})
    (tmp_path / "recs").mkdir()
    _refused(tmp_path, monkeypatch, capsys, ["score", "--input", "q.csv", "--output", "recs"],
             r"recs: is a directory; --output names the Parquet file to write")


def test_float_parquet_ids_with_integer_id_type_name_the_row(tmp_path, monkeypatch, capsys):
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame({"source": [1.0, 2.0], "target": [2.0, 3.0]}).to_parquet(buffer)
    _project(tmp_path, {"e.parquet": buffer.getvalue()}, "e.parquet", changes={"ingest": {"id_type": "int"}})
    _refused(tmp_path, monkeypatch, capsys, ["ingest"],
             r"e\.parquet: row 0: expected integer node ids in int64 \(id_type int\), found a "
             r"non-integer id '1\.0'")


def test_evaluate_on_a_split_without_edges_is_refused(tmp_path, monkeypatch, capsys):
    lines = "".join(f"{u} {u + 1}\n" for u in range(20)).encode()
    split = {"train": 0.8, "val": 0.2, "test": 0.0}
    _project(tmp_path, {"e.txt": lines}, changes={"ingest": {"split": split}})
    monkeypatch.chdir(tmp_path)
    assert cli.main(["ingest"]) == 0
    capsys.readouterr()
    _refused(tmp_path, monkeypatch, capsys, ["evaluate"],
             r"evaluate: the test split has no edges to rank \(ingest\.split\.test is 0\)")


def test_a_parameters_file_that_is_not_a_mapping(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text("- a\n- b\n")
    _refused(tmp_path, monkeypatch, capsys, ["ingest"],
        r"params\.yaml: expected a mapping of sections, got list")


def test_the_table_covers_every_class():
    assert len(EDGE_LISTS) + len(QUERY_FILES) + len(PARAMETER_FILES) + 1 >= 25


def test_an_unexpected_error_is_one_line_with_the_way_to_the_traceback(tmp_path, monkeypatch, capsys):
    _project(tmp_path, {"e.txt": b"1 2\n"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("pipeline.ingest.ingest", lambda *a, **k: 1 / 0)
    assert cli.main(["ingest"]) == 1
    assert capsys.readouterr().err.strip() == (
        "blade ingest: error: ZeroDivisionError: division by zero (run `blade -v ingest` for the traceback)")
    with pytest.raises(ZeroDivisionError):
        cli.main(["-v", "ingest"])

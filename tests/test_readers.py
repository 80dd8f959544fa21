"""Each input format, and each bad input: one clear error naming file, line and expectation."""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pipeline.input_files import verify_checksum
from pipeline.readers import InputError, read_edges

SNAP_TEXT = "# Directed graph\r\n# FromNodeId\tToNodeId\r\n10\t20\r\n20\t30\r\n10\t30\r\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_snap_gzip_with_crlf_and_comments(tmp_path):
    path = tmp_path / "g.txt.gz"
    with gzip.open(path, "wt", newline="") as handle:
        handle.write(SNAP_TEXT)
    raw = read_edges(path)
    assert raw.source.tolist() == [10, 20, 10]
    assert raw.target.tolist() == [20, 30, 30]
    assert raw.source.dtype == np.int64


def test_snap_plain_space_separated(tmp_path):
    raw = read_edges(write(tmp_path / "g.txt", "1 2\n\n2 3\n"))
    assert list(zip(raw.source, raw.target)) == [(1, 2), (2, 3)]


def test_csv_with_string_product_ids(tmp_path):
    path = write(tmp_path / "g.csv", "src,dst,weight\nB00PHONE,B00CASE,1\nB00CASE,B00CABLE,3\n")
    raw = read_edges(path, source_column="src", target_column="dst")
    assert raw.source.tolist() == ["B00PHONE", "B00CASE"]
    assert raw.target.tolist() == ["B00CASE", "B00CABLE"]


def test_tsv_with_header(tmp_path):
    raw = read_edges(write(tmp_path / "g.tsv", "source\ttarget\na\tb\n"))
    assert (raw.source[0], raw.target[0]) == ("a", "b")


def test_parquet(tmp_path):
    path = tmp_path / "g.parquet"
    pd.DataFrame({"source": ["x", "y"], "target": ["y", "z"]}).to_parquet(path)
    raw = read_edges(path)
    assert raw.source.tolist() == ["x", "y"] and raw.target.tolist() == ["y", "z"]


def test_npz_sparse_graph_keeps_isolated_nodes_and_features(tmp_path):
    # 3 nodes, edge 0 -> 2 only; node 1 is isolated but must stay a node.
    adjacency = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=np.float32))
    attributes = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
    path = tmp_path / "g.npz"
    np.savez(path, adj_data=adjacency.data, adj_indices=adjacency.indices,
             adj_indptr=adjacency.indptr, adj_shape=adjacency.shape,
             attr_data=attributes.data, attr_indices=attributes.indices,
             attr_indptr=attributes.indptr, attr_shape=attributes.shape)
    raw = read_edges(path)
    assert raw.source.tolist() == [0] and raw.target.tolist() == [2]
    assert raw.node_ids.tolist() == [0, 1, 2]
    assert raw.features.shape == (3, 4)


# --- bad input --------------------------------------------------------------------------------

def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.txt", "")
    with pytest.raises(InputError, match=r"empty\.txt: empty"):
        read_edges(path)


def test_only_comments_counts_as_empty(tmp_path):
    with pytest.raises(InputError, match="empty"):
        read_edges(write(tmp_path / "c.txt", "# nothing here\n"))


def test_line_with_one_column_names_the_line(tmp_path):
    path = write(tmp_path / "g.txt", "# header\n1\t2\n3\n4\t5\n")
    with pytest.raises(InputError, match=r"g\.txt:3: expected 2 whitespace-separated columns.*found 1"):
        read_edges(path)


def test_line_with_three_columns_names_the_line(tmp_path):
    path = write(tmp_path / "g.txt", "1 2\n3 4 5\n")
    with pytest.raises(InputError, match=r"g\.txt:2: expected 2 .*found 3"):
        read_edges(path)


def test_non_numeric_id_in_snap_names_line_and_token(tmp_path):
    path = write(tmp_path / "g.txt", "# c\n1\t2\n\n3\tB00X\n")
    with pytest.raises(InputError, match=r"g\.txt:4: expected integer node ids.*'B00X'"):
        read_edges(path)


def test_csv_row_with_one_column_names_the_line(tmp_path):
    path = write(tmp_path / "g.csv", "source,target\na,b\nc\n")
    with pytest.raises(InputError, match=r"g\.csv:3: expected a value in both"):
        read_edges(path)


def test_csv_without_the_named_columns(tmp_path):
    path = write(tmp_path / "g.csv", "from,to\na,b\n")
    with pytest.raises(InputError, match=r"g\.csv:1: header must name .*'source', 'target'"):
        read_edges(path)


def test_unknown_format(tmp_path):
    with pytest.raises(InputError, match=r"g\.xlsx: unknown edge-list format '\.xlsx'"):
        read_edges(write(tmp_path / "g.xlsx", "1 2\n"))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.txt: file not found"):
        read_edges(tmp_path / "nope.txt")


def test_checksum_from_readme_beside_the_file(tmp_path):
    path = write(tmp_path / "g.txt", "1 2\n")
    assert verify_checksum(path) is None  # no README: nothing to check
    good = "5a4c8d1a8e1f5c9fb2f2a3d8d0c0a2a7c1f3b7a5b6e9d0f1a2b3c4d5e6f7a8b9"
    (tmp_path / "README.md").write_text(f"| file | bytes | sha256 |\n| `g.txt` | 4 | `{good}` |\n")
    with pytest.raises(InputError, match="does not match"):
        verify_checksum(path)
    import hashlib

    actual = hashlib.sha256(b"1 2\n").hexdigest()
    (tmp_path / "README.md").write_text(f"| `g.txt` | 4 | `{actual}` |\n")
    assert verify_checksum(path) == actual


@pytest.mark.parametrize(("text", "line", "found"), [
    # ids above 2^63 - 1 used to wrap to -2^63 and merge into one product
    ("1 2\n99999999999999999999999 3\n88888888888888888888888 4\n", 2,
     "an integer id outside int64 '99999999999999999999999'"),
    ("1 2\n9223372036854775808 3\n", 2, "an integer id outside int64 '9223372036854775808'"),
    # float-looking ids used to become 3 and 1000
    ("1 2\n3.0 4\n", 2, "a non-integer id '3.0'"),
    ("1 2\n\n1e3 4\n", 3, "a non-integer id '1e3'"),
])
def test_integer_ids_must_be_written_as_int64_integers(tmp_path, text, line, found):
    path = write(tmp_path / "g.txt", text)
    with pytest.raises(InputError) as error:
        read_edges(path)
    assert str(error.value).startswith(f"{path}:{line}: expected integer node ids in int64")
    assert found in str(error.value) and "ingest.id_type: string" in str(error.value)


def test_int64_limits_are_read_exactly(tmp_path):
    path = write(tmp_path / "g.txt", "9223372036854775807 -9223372036854775808\n007 +8\n")
    raw = read_edges(path)
    assert raw.source.tolist() == [2**63 - 1, 7] and raw.target.tolist() == [-(2**63), 8]


def test_csv_row_with_an_extra_field_is_refused_not_shifted(tmp_path):
    # pandas would take the extra first field as an index: source B, target X
    path = write(tmp_path / "e.csv", "source,target\nA,B,X\n")
    with pytest.raises(InputError, match=r"e\.csv:2: expected 2 fields separated by ',', as in the header; "
                                         r"found 3$"):
        read_edges(path)


def test_string_ids_stay_exact_strings(tmp_path):
    raw = read_edges(write(tmp_path / "e.csv", "source,target\n007,3.0\n1e3,B\n"))
    assert raw.source.tolist() == ["007", "1e3"] and raw.target.tolist() == ["3.0", "B"]


@pytest.mark.parametrize("name", ["e.csv", "g.txt"])
def test_undecodable_bytes_name_line_and_byte(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"source,target\nA,B\n\xff,C\n" if name.endswith("csv") else b"1 2\n3 \xe9\n")
    with pytest.raises(InputError) as error:
        read_edges(path, id_type="string")
    where = "3: byte 18 (b'\\xff')" if name.endswith("csv") else "2: byte 6 (b'\\xe9')"
    assert str(error.value) == (f"{path}:{where} is not UTF-8; expected UTF-8 text "
                                f"(re-encode the file, e.g. iconv -t UTF-8)")


def test_compressed_files_need_their_suffix(tmp_path):
    hidden = tmp_path / "g.txt"
    hidden.write_bytes(gzip.compress(b"1 2\n"))
    with pytest.raises(InputError, match=r"g\.txt: gzip-compressed, but the name does not end in \.gz; "
                                         r"rename it to g\.txt\.gz"):
        read_edges(hidden)
    fake = tmp_path / "g.txt.gz"
    fake.write_text("1 2\n")
    with pytest.raises(InputError, match="named .gz but not gzip-compressed"):
        read_edges(fake)
    bz = tmp_path / "g.csv"
    bz.write_bytes(b"BZh91AY&SY")
    with pytest.raises(InputError, match="bzip2-compressed; expected plain text or gzip"):
        read_edges(bz)


def test_npz_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "g.npz"
    np.savez(path, adj_data=np.array([object()], dtype=object), adj_indices=np.array([0]),
             adj_indptr=np.array([0, 1]), adj_shape=np.array([1, 1]))
    with pytest.raises(InputError, match="expected numeric adjacency/attribute arrays: Object arrays cannot"):
        read_edges(path)


def test_csv_fields_lose_the_spaces_around_them(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("source, target\nA, B\n C ,\tD\n")
    raw = read_edges(path)
    assert list(raw.source) == ["A", "C"] and list(raw.target) == ["B", "D"]


def test_float_parquet_ids_with_integer_id_type_name_the_row(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame({"source": [1.0, 2.5], "target": [2.0, 3.0]}).to_parquet(path)
    with pytest.raises(InputError, match=r"e\.parquet: row 0: expected integer node ids in int64 "
                                         r"\(id_type int\), found a non-integer id '1\.0'"):
        read_edges(path, id_type="int")

"""One schema for a cluster run's Parquet parts (drumfire._cluster_schema), on parts
written here as tasks write them: one per partition, typed from its own rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drumfire._cluster_schema import share_schema

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_parts(directory: Path, columns: list[Any]) -> None:
    """``part-NNNNNN.parquet`` for each array of ``columns``: an ``id`` and an ``n`` column."""
    directory.mkdir()
    for i, n in enumerate(columns):
        ids = [f"p{i}r{j}" for j in range(len(n))]
        pq.write_table(pa.table({"id": ids, "n": n}), directory / f"part-{i:06d}.parquet")


def read_every_way(directory: Path) -> dict[str, Any]:
    """The ``n`` column by id as pyarrow.dataset, pandas and polars read the dataset: the
    same for all three, and typed as the one schema says."""
    import pyarrow.dataset as ds

    table = ds.dataset(directory).to_table()
    got = dict(zip(table.column("id").to_pylist(), table.column("n").to_pylist(), strict=True))
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(directory)
    assert {k: None if pd.isna(v) else v for k, v in zip(frame["id"], frame["n"], strict=True)} \
        == got  # fmt: skip
    pl = pytest.importorskip("polars")
    polars = pl.read_parquet(str(directory / "*.parquet"))
    assert dict(zip(polars["id"].to_list(), polars["n"].to_list(), strict=True)) == got
    types = {pq.read_schema(p).field("n").type for p in directory.glob("part-*.parquet")}
    assert types == {table.schema.field("n").type}
    return got


def test_values_that_disagree_make_the_column_text_in_every_part(tmp_path: Path) -> None:
    # Numbers in one part, text in another, booleans in a third, and parts without a
    # value: the parts were left as they were (no type holds both unchanged), so polars
    # refused the dataset and pyarrow/pandas took the first part's type, failing on the
    # others' values or reading them by chance. Now the column is text in every part, as
    # one process types a column whose values disagree, each value as it writes it there.
    out = tmp_path / "out.parquet"
    write_parts(out, [
        pa.array([1, 2], pa.int64()),  # first: its type was the dataset's
        pa.array([None, None], pa.string()),  # every row failed here
        pa.array(["x", None], pa.string()),
        pa.array([0.5, 100.0, float("nan")], pa.float64()),
        pa.array([True, None], pa.bool_()),
        pa.array([None], pa.float64()),
    ])  # fmt: skip
    assert share_schema(str(out)) is None
    assert read_every_way(out) == {
        "p0r0": "1", "p0r1": "2", "p1r0": None, "p1r1": None, "p2r0": "x", "p2r1": None,
        "p3r0": "0.5", "p3r1": "100.0", "p3r2": "NaN", "p4r0": "true", "p4r1": None,
        "p5r0": None,
    }  # fmt: skip
    assert share_schema(str(out)) is None  # a second run's end changes nothing
    assert read_every_way(out)["p3r1"] == "100.0"


def test_an_integer_a_float_would_round_makes_the_column_text(tmp_path: Path) -> None:
    # Whole numbers beside fractions become float64, as in one process; but 2**60 + 1 as a
    # float64 is another number: its part was kept int64, a dataset readers refuse.
    # Now the column is text everywhere, every digit kept.
    out = tmp_path / "out.parquet"
    big = 2**60 + 1
    write_parts(out, [pa.array([0.5]), pa.array([big, 3]), pa.array([None], pa.string())])
    assert share_schema(str(out)) is None
    assert read_every_way(out) == {"p0r0": "0.5", "p1r0": str(big), "p1r1": "3", "p2r0": None}


def test_numbers_that_agree_keep_their_type(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    write_parts(out, [pa.array([None], pa.string()), pa.array([2, 3]), pa.array([0.5])])
    assert share_schema(str(out)) is None
    assert read_every_way(out) == {"p0r0": None, "p1r0": 2.0, "p1r1": 3.0, "p2r0": 0.5}
    assert pq.read_schema(out / "part-000001.parquet").field("n").type == pa.float64()

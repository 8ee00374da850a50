"""Inputs: paths, the OSRM-shaped JSON document nginx answers with, and the input
files (random coordinate pairs as CSV, URL paths for wrk).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ALL_TOOLS",
    "BENCH_DIR",
    "LOOPBACK",
    "OSRM_LIKE_BODY",
    "OSRM_PATH_TEMPLATE",
    "PAIR_COLUMNS",
    "REPO_ROOT",
    "SRC_DIR",
    "field_path",
    "random_coordinate_rows",
    "read_output_csv",
    "rows_to_paths",
    "write_paths_file",
    "write_rows_csv",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SRC_DIR = REPO_ROOT / "src"

LOOPBACK = "127.0.0.1"
PAIR_COLUMNS = ("id", "lon1", "lat1", "lon2", "lat2")
OSRM_PATH_TEMPLATE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
ALL_TOOLS = ("wrk", "drumfire", "aiohttp", "pipelined")


def field_path(spec: str) -> list[str | int]:
    """A reference client's ``--field``: ``routes.0.duration`` -> ``["routes", 0, "duration"]``."""
    return [int(p) if p.lstrip("-").isdigit() else p for p in spec.split(".") if p]


# --------------------------------------------------------------------------- the JSON document


def _osrm_like_document() -> bytes:
    """One fixed OSRM ``/route`` answer (``overview=false`` shape), about 560 bytes."""
    hint = "4tQ_gP___38AAAAAKwAAAA0AAAAAAAAAKwAAAA0AAAAAAAAAAQAAAEnLzABPIx4D"
    doc = {
        "code": "Ok",
        "routes": [
            {
                "legs": [
                    {
                        "steps": [],
                        "summary": "",
                        "weight": 1021.4,
                        "duration": 1021.4,
                        "distance": 13407.3,
                    }
                ],
                "weight_name": "routability",
                "weight": 1021.4,
                "duration": 1021.4,
                "distance": 13407.3,
            }
        ],
        "waypoints": [
            {
                "hint": hint + "3BIAAKQLAAA=",
                "distance": 4.132218,
                "name": "Karl-Liebknecht-Strasse",
                "location": [13.409431, 52.520008],
            },
            {
                "hint": hint + "AGBAAKQLAAA=",
                "distance": 11.504521,
                "name": "Unter den Linden",
                "location": [13.388798, 52.517033],
            },
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


OSRM_LIKE_BODY = _osrm_like_document()


# --------------------------------------------------------------------------- input files


def random_coordinate_rows(n: int, seed: int = 1) -> list[dict[str, str]]:
    """``n`` rows ``id,lon1,lat1,lon2,lat2`` with distinct random coordinates (Berlin box)."""
    rng = random.Random(seed)
    seen: set[tuple[str, str, str, str]] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        key = (
            f"{rng.uniform(13.10, 13.70):.6f}",
            f"{rng.uniform(52.35, 52.65):.6f}",
            f"{rng.uniform(13.10, 13.70):.6f}",
            f"{rng.uniform(52.35, 52.65):.6f}",
        )
        if key in seen:
            continue
        seen.add(key)
        rows.append(dict(zip(PAIR_COLUMNS, (str(len(rows)), *key), strict=True)))
    return rows


def write_rows_csv(
    path: Path, rows: Iterable[Mapping[str, str]], columns: Sequence[str] = PAIR_COLUMNS
) -> int:
    """Write the input CSV (header + rows, only ``columns``); returns the row count."""
    count = 0
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])
            count += 1
    return count


def rows_to_paths(
    rows: Iterable[Mapping[str, str]], template: str = OSRM_PATH_TEMPLATE, query: str = ""
) -> list[str]:
    """The URL paths (plus optional ``?query``) the rows expand to."""
    suffix = f"?{query}" if query else ""
    return [template.format_map(row) + suffix for row in rows]


def write_paths_file(path: Path, paths: Iterable[str]) -> int:
    """One URL path per line, as read by the wrk Lua script."""
    count = 0
    with path.open("w") as fh:
        for p in paths:
            if "\n" in p or not p.startswith("/"):
                raise ValueError(f"bad URL path: {p!r}")
            fh.write(p + "\n")
            count += 1
    return count


def read_output_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a client's output CSV."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows

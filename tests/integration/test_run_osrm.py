"""``drumfire run`` against a real osrm-routed, checked row for row against a plain
http.client run of the same URLs."""

from __future__ import annotations

import csv
import http.client
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from drumfire._testing.osrm import OsrmServer, random_pairs, route_path

pytestmark = pytest.mark.osrm

N = 2000
COLUMNS = ["id", "lon1", "lat1", "lon2", "lat2"]


def direct_answers(port: int, paths: list[str]) -> tuple[list[tuple[int, Any]], int]:
    """GET every path in turn on one keep-alive connection, reconnecting when the server
    has closed it; return the (status, JSON body) answers and the number of reconnects."""
    answers: list[tuple[int, Any]] = []
    reconnects = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for path in paths:
            for attempt in range(2):
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                except (http.client.RemoteDisconnected, ConnectionError):
                    if attempt:
                        raise
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    reconnects += 1
                    continue
                answers.append((resp.status, json.loads(body)))
                break
    finally:
        conn.close()
    return answers, reconnects


def test_drumfire_matches_a_plain_client_row_for_row(
    osrm_server: OsrmServer, tmp_path: Path
) -> None:
    pairs = random_pairs(N, seed=7)
    routes = tmp_path / "routes.csv"
    with routes.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(pairs)
    out = tmp_path / "out.csv"
    url = osrm_server.base_url + "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}?overview=false"
    # -c 3: some connection has to carry more than 512 requests, after which osrm-routed
    # closes it without "Connection: close" (its 512th answer says "Keep-Alive: max=1").
    proc = subprocess.run(
        [
            sys.executable, "-m", "drumfire.cli", "run", str(routes), "--url", url,
            "-e", "code=code", "-e", "duration=routes[0].duration",
            "-e", "distance=routes[0].distance", "-c", "3", "-o", str(out),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"drumfire: {N:,} rows" in proc.stderr

    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == [
            "id", "status", "elapsed_ms", "attempts", "error", "code", "duration", "distance",
        ]  # fmt: skip
        results = list(reader)
    assert Counter(r["id"] for r in results) == Counter(p["id"] for p in pairs)
    assert [r for r in results if r["error"]] == []
    assert all(r["attempts"] == "1" for r in results)  # "max=1" answers: no stale reuse

    answers, reconnects = direct_answers(osrm_server.port, [route_path(p) for p in pairs])
    assert reconnects == (N - 1) // 512  # osrm-routed closed after every 512th answer
    got = {r["id"]: r for r in results}
    statuses: Counter[int] = Counter()
    for pair, (status, body) in zip(pairs, answers, strict=True):
        row = got[pair["id"]]
        statuses[status] += 1
        assert int(row["status"]) == status, (pair, row, body)
        assert row["code"] == body["code"]
        if body.get("routes"):
            assert float(row["duration"]) == body["routes"][0]["duration"]
            assert float(row["distance"]) == body["routes"][0]["distance"]
        else:
            assert (row["duration"], row["distance"]) == ("", "")
    assert statuses[200] > 0
    assert statuses[400] > 0
    assert set(statuses) == {200, 400}

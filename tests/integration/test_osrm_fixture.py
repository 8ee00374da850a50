from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from drumfire._testing.osrm import OsrmServer, random_pairs, route_path

pytestmark = pytest.mark.osrm

# Never send loopback traffic through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with _OPENER.open(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def _check(status: int, body: dict[str, Any]) -> str:
    if status == 200:
        assert body["code"] == "Ok"
        assert isinstance(body["routes"][0]["duration"], int | float)
    else:
        assert (status, body["code"]) == (400, "NoRoute")
    return str(body["code"])


def test_answers_are_ok_or_noroute(osrm_server: OsrmServer) -> None:
    assert osrm_server.base_url == f"http://127.0.0.1:{osrm_server.port}"
    for pair in random_pairs(20):
        status, body = _get(osrm_server.base_url + route_path(pair))
        _check(status, body)


def test_both_kinds_among_200_pairs(osrm_server: OsrmServer) -> None:
    codes = [_check(*_get(osrm_server.base_url + route_path(p))) for p in random_pairs(200)]
    assert 0 < codes.count("NoRoute") < len(codes)
    assert codes.count("Ok") + codes.count("NoRoute") == len(codes)


def test_random_pairs_are_deterministic() -> None:
    pairs = random_pairs(5, seed=7)
    assert pairs == random_pairs(5, seed=7)
    assert pairs != random_pairs(5, seed=8)
    assert [p["id"] for p in pairs] == ["1", "2", "3", "4", "5"]
    assert all(len(p["lat1"].split(".")[1]) == 6 for p in pairs)

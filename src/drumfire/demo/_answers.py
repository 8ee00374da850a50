"""Pure answer functions of the demo server (the tests compute expected answers with
them): OSRM-shaped routes, the Random Quoter, the fixed JSON document, sample inputs.
"""

from __future__ import annotations

import csv
import math
import os
import random
import zlib
from pathlib import Path
from typing import Any, Final

import orjson

__all__ = [
    "EARTH_RADIUS_M",
    "JSON_DOCUMENT",
    "NO_ROUTE_PERCENT",
    "QUOTES",
    "QUOTE_PARTS",
    "ROUTE_DETOUR",
    "ROUTE_SPEED_MPS",
    "SLOW_QUOTE_DELAY",
    "quote_answer",
    "route_answer",
    "write_sample_routes",
]

# --------------------------------------------------------------------------------------------
# Pure answer functions (shared with the tests, which compute expected answers with them)
# --------------------------------------------------------------------------------------------

EARTH_RADIUS_M: Final = 6_371_008.8
"""Mean earth radius (IUGG); any fixed value would do, it only has to be stable."""

ROUTE_DETOUR: Final = 1.3
"""Roads are longer than the great circle; a constant factor keeps answers plausible."""

ROUTE_SPEED_MPS: Final = 11.0
"""About 40 km/h: a city average, so durations look like OSRM's for Helsinki."""

NO_ROUTE_PERCENT: Final = 30
"""Share of coordinate pairs answering ``NoRoute``, so clients meet realistic 400s."""

_STREETS: Final = (
    "Mannerheimintie",
    "Aleksanterinkatu",
    "Pohjoisesplanadi",
    "Hämeentie",
    "Runeberginkatu",
    "Fredrikinkatu",
    "Bulevardi",
    "Unioninkatu",
    "Mechelininkatu",
    "Sörnäisten rantatie",
    "Itämerenkatu",
    "Tehtaankatu",
)


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _invalid_url(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"code": "InvalidUrl", "message": message}


def _waypoint(text: bytes, lon: float, lat: float) -> dict[str, Any]:
    name = _STREETS[zlib.crc32(text) % len(_STREETS)]
    return {"hint": "", "distance": 0.0, "name": name, "location": [round(lon, 6), round(lat, 6)]}


def route_answer(lon1: float, lat1: float, lon2: float, lat2: float) -> tuple[int, dict[str, Any]]:
    """Return ``(status, body)`` the server gives for a route, so tests can predict it exactly.

    The distance is the haversine distance times :data:`ROUTE_DETOUR` (rounded to 0.1 m) and
    the duration is distance / :data:`ROUTE_SPEED_MPS` (rounded to 0.1 s). Whether a pair has
    no route is decided by the CRC-32 of the coordinates printed with 6 decimals, so it is
    stable across runs, processes and Python versions.
    """
    if not math.isfinite(lon1 + lat1 + lon2 + lat2):
        return _invalid_url("Coordinates must be finite numbers")
    if not (-180.0 <= lon1 <= 180.0 and -180.0 <= lon2 <= 180.0):
        return _invalid_url("Longitude must be within [-180, 180]")
    if not (-90.0 <= lat1 <= 90.0 and -90.0 <= lat2 <= 90.0):
        return _invalid_url("Latitude must be within [-90, 90]")
    first, second = f"{lon1:.6f},{lat1:.6f}".encode(), f"{lon2:.6f},{lat2:.6f}".encode()
    if zlib.crc32(b"%s;%s" % (first, second)) % 100 < NO_ROUTE_PERCENT:
        return 400, {"code": "NoRoute", "message": "Impossible route between points"}
    distance = round(_haversine_m(lon1, lat1, lon2, lat2) * ROUTE_DETOUR, 1)
    duration = round(distance / ROUTE_SPEED_MPS, 1)
    leg = {
        "steps": [],
        "summary": "",
        "weight": duration,
        "duration": duration,
        "distance": distance,
    }
    route = {
        "duration": duration,
        "distance": distance,
        "weight": duration,
        "weight_name": "routability",
        "legs": [leg],
    }
    return 200, {
        "code": "Ok",
        "routes": [route],
        "waypoints": [_waypoint(first, lon1, lat1), _waypoint(second, lon2, lat2)],
    }


QUOTES: Final[tuple[tuple[str, int, int], ...]] = (
    # (quote, chapter, part): short sentences written for this project.
    ("A request that is never sent never fails, and never succeeds either.", 1, 1),
    ("Measure first; the slow part is rarely where you guessed.", 1, 1),
    ("Every queue is short until the morning traffic arrives.", 2, 1),
    ("A timeout is a promise you make to the person waiting.", 2, 1),
    ("The fastest byte is the one you did not have to send.", 3, 1),
    ("Keep the connection warm and the handshake rare.", 3, 1),
    ("A retry without a limit is just a louder failure.", 4, 1),
    ("Order is cheap to keep and expensive to restore.", 5, 2),
    ("The map is not the road, but it is cheaper to walk.", 5, 2),
    ("Every average hides a tail that someone had to wait through.", 6, 2),
    ("Write it down before the log rotates it away.", 6, 2),
    ("Two cores are a crowd when both want the same lock.", 7, 2),
    ("A cache remembers what the database would rather forget.", 7, 2),
    ("Slow answers are still answers; lost ones are not.", 8, 2),
    ("Patience is a latency budget you have not spent yet.", 9, 3),
    ("The last request in the batch is the one everyone remembers.", 9, 3),
    ("Good defaults are the documentation nobody reads.", 10, 3),
    ("A route with no way through is still a useful answer.", 10, 3),
    ("Backpressure is the polite way of saying not yet.", 11, 3),
    ("Count what you sent, count what came back, and compare.", 11, 3),
    ("When the benchmark looks too good, check what it skipped.", 12, 3),
)
"""The Random Quoter's collection as ``(quote, chapter, part)``; parts are 1..3."""

QUOTE_PARTS: Final = (1, 2, 3)
SLOW_QUOTE_DELAY: Final = 0.5
"""What ``slow=true`` adds: long enough to show concurrency helping, short enough for tests."""


def quote_answer(index: int, part: int | None = None) -> dict[str, Any]:
    """Return the quote for a ``seed`` (or request counter) ``index``, optionally within a part.

    Picks ``pool[index % len(pool)]`` -- trivially predictable, which is what tests need.
    """
    if part is not None and part not in QUOTE_PARTS:
        raise ValueError(f"part must be one of {QUOTE_PARTS}, not {part}")
    pool = QUOTES if part is None else tuple(q for q in QUOTES if q[2] == part)
    text, chapter, got_part = pool[index % len(pool)]
    return {"quote": text, "source": {"chapter": chapter, "part": got_part}}


JSON_DOCUMENT: Final[bytes] = orjson.dumps(
    {
        "code": "Ok",
        "routes": [
            {
                "geometry": "o}`pJmhtwC{@iBsAsCwBcEkB_DgA}AmAeBuCmDcDeD",
                "legs": [
                    {
                        "steps": [],
                        "summary": "Mannerheimintie",
                        "weight": 412.3,
                        "duration": 412.3,
                        "distance": 4535.6,
                    }
                ],
                "weight_name": "routability",
                "weight": 412.3,
                "duration": 412.3,
                "distance": 4535.6,
            }
        ],
        "waypoints": [
            {
                "hint": "nB8ngP___38RAAAAAAAAAAAAAAAAAAAAANx2WkEAAAAAAAAAAAAAAAAR",
                "distance": 4.231,
                "name": "Mannerheimintie",
                "location": [24.938379, 60.169856],
            },
            {
                "hint": "pL8ngP___38JAAAAFAAAAAAAAAAAAAAAAF3pr0BgIJFAAAAAAAAAAAAJ",
                "distance": 2.818,
                "name": "Runeberginkatu",
                "location": [24.922516, 60.176322],
            },
        ],
    }
)
"""The fixed ``GET /json`` body: realistic size and shape, zero per-request work."""


def write_sample_routes(path: str | os.PathLike[str], n: int, seed: int = 0) -> Path:
    """Write ``n`` deterministic Helsinki coordinate pairs as CSV, a ready-made demo batch.

    Columns are ``id,lon1,lat1,lon2,lat2``; ids run 1..n; longitudes lie in 24.90–24.99 and
    latitudes in 60.15–60.20, printed with 6 decimals. The same ``seed`` gives the same file.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "lon1", "lat1", "lon2", "lat2"))
        for i in range(1, n + 1):
            lon1, lon2 = rng.uniform(24.90, 24.99), rng.uniform(24.90, 24.99)
            lat1, lat2 = rng.uniform(60.15, 60.20), rng.uniform(60.15, 60.20)
            writer.writerow((i, f"{lon1:.6f}", f"{lat1:.6f}", f"{lon2:.6f}", f"{lat2:.6f}"))
    return out

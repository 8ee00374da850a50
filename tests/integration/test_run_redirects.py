"""--follow-redirects against scripted servers: hops, limits, methods, credentials."""

from __future__ import annotations

from typing import Any

from servers import Action, ScriptedServer, respond

from drumfire import run


def rows(n: int = 3) -> list[dict[str, str]]:
    return [{"id": str(i)} for i in range(n)]


def hop_handler(base: str, hops: int):  # type: ignore[no-untyped-def]
    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        path, _, _ = target.partition("?")
        depth = int(path.rsplit("/", 1)[-1]) if path.rsplit("/", 1)[-1].isdigit() else 0
        if depth < hops:
            return respond(302, b"", [("Location", f"{base}/hop/{depth + 1}")])
        return respond(200, {"depth": depth, "method": method, "body": body.decode()})

    return handler


def test_not_followed_by_default() -> None:
    with ScriptedServer(hop_handler("", 2)) as srv:
        results = list(run(rows(), srv.url("/hop/0"), extract={"d": "depth"}))
    assert {(r.status, r.error) for r in results} == {(302, "")}


def test_relative_redirect_chain_is_followed() -> None:
    with ScriptedServer(hop_handler("", 3)) as srv:
        results = list(run(rows(), srv.url("/hop/0"), extract={"d": "depth"},
                           follow_redirects=True))
    assert all(r.status == 200 and r.error == "" and r.fields == {"d": 3} for r in results)
    assert all(r.attempts == 4 for r in results)  # every hop is a request sent


def test_redirect_loop_stops_at_the_limit() -> None:
    def loop(index: int, method: str, target: str, headers: dict[str, str], body: bytes
             ) -> Action:
        return respond(301, b"", [("Location", "/again")])

    with ScriptedServer(loop) as srv:
        results = list(run(rows(2), srv.url("/start"), follow_redirects=3))
        sent = len(srv.requests)
    assert {(r.status, r.error, r.attempts) for r in results} == {(301, "too_many_redirects", 4)}
    assert sent == 8


def test_303_after_post_becomes_get_and_307_keeps_the_body() -> None:
    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target.startswith("/see-other"):
            return respond(303, b"", [("Location", "/done")])
        if target.startswith("/temporary"):
            return respond(307, b"", [("Location", "/done")])
        return respond(200, {"method": method, "body": body.decode()})

    with ScriptedServer(handler) as srv:
        see = list(run(rows(1), srv.url("/see-other"), data='{{"q": 1}}', follow_redirects=True,
                       extract={"m": "method", "b": "body"}))
        tmp = list(run(rows(1), srv.url("/temporary"), data='{{"q": 1}}', follow_redirects=True,
                       extract={"m": "method", "b": "body"}))
    assert see[0].fields == {"m": "GET", "b": ""}
    assert tmp[0].fields == {"m": "POST", "b": '{"q": 1}'}


def test_credentials_dropped_on_a_cross_origin_hop_only() -> None:
    seen: dict[str, Any] = {}

    def target_handler(index: int, method: str, target: str, headers: dict[str, str],
                       body: bytes) -> Action:
        seen[target] = {k.lower(): v for k, v in headers.items()}
        return respond(200, {"ok": True})

    with ScriptedServer(target_handler) as other:
        def origin_handler(index: int, method: str, target: str, headers: dict[str, str],
                           body: bytes) -> Action:
            if target == "/same":
                return respond(302, b"", [("Location", "/landed")])
            if target == "/landed":
                seen["same-origin"] = {k.lower(): v for k, v in headers.items()}
                return respond(200, {"ok": True})
            return respond(302, b"", [("Location", other.url("/elsewhere"))])

        with ScriptedServer(origin_handler) as srv:
            headers = {"Authorization": "Bearer secret", "Cookie": "s=1", "X-Trace": "t"}
            for path in ("/same", "/cross"):
                results = list(run([{"id": "1"}], srv.url(path), headers=headers,
                                   follow_redirects=True))
                assert results[0].status == 200
    assert seen["same-origin"]["authorization"] == "Bearer secret"
    assert seen["same-origin"]["cookie"] == "s=1"
    crossed = seen["/elsewhere"]
    assert "authorization" not in crossed
    assert "cookie" not in crossed
    assert crossed["x-trace"] == "t"
    assert crossed["host"].endswith(str(other.url("/").split(":")[2].rstrip("/")))

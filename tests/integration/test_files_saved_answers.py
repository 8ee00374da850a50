"""--save-body keeps the row's final answer only: never an earlier attempt's body, and
--retry-failed sends the chosen rows again (their files replaced)."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, chunked, partial, refused_port, respond

from drumfire import Result, Retry, run, run_all
from drumfire._savebody import TEMP_SUFFIX

CLI = [sys.executable, "-m", "drumfire.cli"]
NO_WAIT = Retry(backoff=0.0)  # retries at once: the tests wait for nothing


def drumfire(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def first_503_then(second: Action) -> object:
    """A handler: each target's first request gets a 503, later ones ``second``."""
    seen: set[str] = set()

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target not in seen:
            seen.add(target)
            return respond(503, b"first-attempt-503-body")
        return second

    return handler


def test_a_retried_answer_is_not_saved_under_the_final_name(tmp_path: Path) -> None:
    """503 (a status to save) then 200 (not one): the row is the 200, and no file claims it
    (the 503's body was saved under the row's name and the row named it)."""
    with ScriptedServer(first_503_then(respond(200, b"second-attempt-200-body"))) as srv:
        [result] = run([{"id": "r1"}], srv.url("/{id}"), save_body="{id}.bin",
                       save_dir=str(tmp_path), save_status="5xx", retry=NO_WAIT)
    assert (result.status, result.attempts, result.error) == (200, 2, "")
    assert result.fields == {"saved_path": None, "saved_bytes": None}
    assert files_in(tmp_path) == {}


def test_the_final_answer_is_the_one_saved(tmp_path: Path) -> None:
    with ScriptedServer(first_503_then(respond(200, b"second-attempt-200-body"))) as srv:
        [result] = run([{"id": "r1"}], srv.url("/{id}"), save_body="{id}.bin",
                       save_dir=str(tmp_path), save_status="all", retry=NO_WAIT)
    assert (result.status, result.attempts) == (200, 2)
    assert result.fields == {"saved_path": "r1.bin", "saved_bytes": 23}
    assert files_in(tmp_path) == {"r1.bin": b"second-attempt-200-body"}


def test_a_row_that_fails_after_a_saved_answer_names_no_file(tmp_path: Path) -> None:
    """A 503 saved (--save-status all) then a body cut short; a 302 saved, followed to a
    port that refuses: the rows fail, and neither body is left under any name."""
    with refused_port() as dead:

        def handler(index: int, method: str, target: str, headers: dict[str, str],
                    body: bytes) -> Action:
            if target == "/cut":
                return (respond(503, b"first-attempt-503-body") if index == 0
                        else partial(200, b"y" * 1000, 10))
            return respond(302, b"redirect-body",
                           [("Location", f"http://127.0.0.1:{dead}/gone")])

        with ScriptedServer(handler) as srv:
            cut = list(run([{"id": "c1", "p": "cut"}], srv.url("/{p}"), save_body="{id}.bin",
                           save_dir=str(tmp_path), save_status="all",
                           retry=Retry(backoff=0.0, retries=1)))
            moved = list(run([{"id": "c2", "p": "moved"}], srv.url("/{p}"),
                             save_body="{id}.bin", save_dir=str(tmp_path), save_status="all",
                             retry=Retry(backoff=0.0, retries=1), follow_redirects=True))
    assert (cut[0].status, cut[0].attempts) == (None, 2)
    assert cut[0].error in ("reset", "protocol"), cut[0]
    assert (moved[0].status, moved[0].error) == (None, "connect")
    for result in (*cut, *moved):
        assert result.fields == {"saved_path": None, "saved_bytes": None}
    assert files_in(tmp_path) == {}


def test_retry_failed_sends_the_rows_again_and_replaces_their_files(tmp_path: Path) -> None:
    """Rows chosen by --retry-failed are sent, whatever file is under their name (it used
    to be taken as complete: no request, and the row claimed a body it never got)."""
    (tmp_path / "in.csv").write_text("id\nok\nbad\nlost\n")
    out, saved = tmp_path / "out.csv", tmp_path / "dl"
    healthy = [False]

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target == "/bad" and not healthy[0]:
            return respond(503, b"down")
        return respond(200, b"body of " + target.encode())

    with ScriptedServer(handler) as srv:
        args = ["run", tmp_path / "in.csv", "--url", srv.url("/{id}"), "--save-body",
                "{id}.bin", "--save-dir", saved, "-o", out, "-q", "--retries", "0"]
        first = drumfire(*args)
        assert first.returncode == 0, first.stderr
        rows = read_csv(out)
        assert rows["bad"]["status"] == "503"
        # A row whose file was saved but whose row was lost (kill -9 in between) ...
        lines = out.read_text().splitlines()
        out.write_text("\n".join(line for line in lines if not line.startswith("lost,")) + "\n")
        # ... and a file under the failed row's name, left by some earlier run.
        (saved / "bad.bin").write_bytes(b"stale")
        healthy[0] = True
        sent = len(srv.requests)
        again = drumfire(*args, "--retry-failed", "503")
        assert again.returncode == 0, again.stderr
        resent = sorted(r.target for r in srv.requests[sent:])
    assert resent == ["/bad"]  # the chosen row; the lost row's file is complete
    rows = read_csv(out)
    assert sorted(rows) == ["bad", "lost", "ok"]
    assert (rows["bad"]["status"], rows["bad"]["attempts"]) == ("200", "1")
    assert (rows["lost"]["status"], rows["lost"]["attempts"]) == ("", "0")
    assert files_in(saved) == {
        "ok.bin": b"body of /ok",
        "bad.bin": b"body of /bad",
        "lost.bin": b"body of /lost",
    }


def test_retry_failed_sends_a_chosen_success_again(tmp_path: Path) -> None:
    """--retry-failed 200 chooses rows whose file is complete: they are sent all the same."""
    (tmp_path / "in.csv").write_text("id\na\n")
    out, saved = tmp_path / "out.csv", tmp_path / "dl"
    version = [1]

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"version %d" % version[0])

    with ScriptedServer(handler) as srv:
        args = ["run", tmp_path / "in.csv", "--url", srv.url("/{id}"), "--save-body",
                "{id}.bin", "--save-dir", saved, "-o", out, "-q"]
        assert drumfire(*args).returncode == 0
        version[0] = 2
        again = drumfire(*args, "--retry-failed", "200")
        assert again.returncode == 0, again.stderr
        assert len(srv.requests) == 2
    assert read_csv(out)["a"]["attempts"] == "1"
    assert files_in(saved) == {"a.bin": b"version 2"}
    assert not [p for p in saved.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_worker_processes_resume_alike(tmp_path: Path) -> None:
    """-p 2: the parent takes a lost row's complete file as done; a cancelled row is sent
    again (its file replaced), as without workers."""
    (tmp_path / "in.csv").write_text("id\na\nb\nc\n")
    out, saved = tmp_path / "out.csv", tmp_path / "dl"
    saved.mkdir()
    out.write_text(
        "id,status,elapsed_ms,attempts,error,saved_path,saved_bytes\n"
        "a,200,1.000,1,,a.bin,9\n"
        "b,,0.000,1,cancelled,,\n"
    )
    (saved / "a.bin").write_bytes(b"body of a")
    (saved / "b.bin").write_bytes(b"stale")  # not the row's answer: it was cancelled
    (saved / "c.bin").write_bytes(b"body of c")  # complete, its row lost

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"body of " + target.lstrip("/").encode())

    with ScriptedServer(handler) as srv:
        proc = drumfire("run", tmp_path / "in.csv", "--url", srv.url("/{id}"), "-p", "2",
                        "--save-body", "{id}.bin", "--save-dir", saved, "-o", out, "-q",
                        "--resume")
        assert proc.returncode == 0, proc.stderr
        assert [r.target for r in srv.requests] == ["/b"]
    rows = read_csv(out)
    assert (rows["b"]["status"], rows["b"]["saved_bytes"]) == ("200", "9")
    assert (rows["c"]["attempts"], rows["c"]["saved_path"]) == ("0", "c.bin")
    assert files_in(saved) == {"a.bin": b"body of a", "b.bin": b"body of b",
                               "c.bin": b"body of c"}


# -- local failures end the row at once (D6): no retry, the server's status kept ---------------


def test_a_body_that_cannot_be_saved_keeps_its_status_and_is_not_retried(
    tmp_path: Path,
) -> None:
    """A directory under the final name, a name too long for the file system: local
    failures that a retry cannot mend (each used to be sent 4 times, status empty)."""
    (tmp_path / "isdir").mkdir()
    (tmp_path / "isdir" / "inside").write_bytes(b"")
    (tmp_path / "afile").write_bytes(b"")
    long_name = "a" * 300  # over any file system's NAME_MAX (255)

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"payload")

    rows = [{"id": "d", "p": "isdir"}, {"id": "l", "p": long_name}, {"id": "ok", "p": "ok"},
            {"id": "f", "p": "afile/x"}]  # fmt: skip
    with ScriptedServer(handler) as srv:
        results = {r.id: r for r in run(rows, srv.url("/{id}"), save_body="{p}",
                                          save_dir=str(tmp_path), retry=NO_WAIT)}
        assert len(srv.requests) == 4
    assert (results["d"].status, results["d"].attempts) == (200, 1)
    assert results["d"].error == "save: isdir: Is a directory"
    assert (results["l"].status, results["l"].attempts) == (200, 1)
    assert results["l"].error == f"save: {long_name}: File name too long"
    assert results["ok"].error == ""
    # A file where a folder of the path should be: the cause, not mkdir's "File exists".
    assert (results["f"].status, results["f"].error) == (200, "save: afile/x: Not a directory")
    assert files_in(tmp_path) == {"afile": b"", "isdir/inside": b"", "ok": b"payload"}


def test_a_full_disk_keeps_the_status_and_is_not_retried(tmp_path: Path) -> None:
    """A write that fails (RLIMIT_FSIZE stands for a full disk: EFBIG as ENOSPC) ends the
    answer there: its status, save: NAME: why, one attempt; the next rows go on."""
    import resource

    def small_files() -> None:  # in the child: files over 64 KiB cannot be written
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    (tmp_path / "in.csv").write_text(
        "id,kind\nbig,length\nchunks,chunked\nclose,close\nsmall,small\n"
    )

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target == "/small":
            return respond(200, b"fits")
        if target == "/chunked":
            return chunked(200, b"c" * 200_000, size=50_000)
        return respond(200, b"x" * 200_000, then="close" if target == "/close" else "keep",
                       length=target != "/close")

    with ScriptedServer(handler) as srv:
        proc = subprocess.run(
            [*CLI, "run", str(tmp_path / "in.csv"), "--url", srv.url("/{kind}"),
             "--save-body", "{id}.bin", "--save-dir", str(tmp_path / "dl"), "-o", "-", "-q",
             "-c", "1"],
            capture_output=True, text=True, timeout=120, check=False, preexec_fn=small_files,
        )
        assert len(srv.requests) == 4, proc.stderr
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in csv.DictReader(proc.stdout.splitlines())}
    for name in ("big", "chunks", "close"):
        assert (rows[name]["status"], rows[name]["attempts"]) == ("200", "1"), rows[name]
        assert rows[name]["error"] == f"save: {name}.bin: File too large"
        assert rows[name]["saved_path"] == ""
    assert rows["small"]["saved_path"] == "small.bin"
    assert files_in(tmp_path / "dl") == {"small.bin": b"fits"}


def test_a_file_that_shrinks_while_sent_is_not_sent_again(tmp_path: Path) -> None:
    """PUT a file that shrinks while it is being sent: file: PATH: why, one attempt (a
    retry sent the same stale Content-Length again, three more times)."""
    import socket

    upload = tmp_path / "up.bin"
    with upload.open("wb") as fh:
        fh.truncate(64 << 20)  # sparse: far more than the socket buffers hold
    headed, go, stop = threading.Event(), threading.Event(), threading.Event()
    heads: list[bytes] = []
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no autotuning
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)

    def serve() -> None:  # reads a request head, then the body only once told to
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                heads.append(data.partition(b"\r\n\r\n")[0])
                headed.set()
                go.wait(30)
                try:
                    while conn.recv(1 << 20):
                        pass
                except OSError:
                    pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/put"
        results: list[Result] = []
        sender = threading.Thread(target=lambda: results.extend(
            run([{"id": "1", "path": str(upload)}], url, method="PUT", data_file="{path}",
                retry=NO_WAIT)))
        sender.start()
        assert headed.wait(30)  # the head is sent and the body has filled the buffers
        upload.write_bytes(b"short now")
        go.set()
        sender.join(60)
    finally:
        stop.set()
        go.set()
        thread.join()
        listener.close()
    [result] = results
    assert (result.attempts, result.status) == (1, None), result
    assert result.error == (
        f"file: {upload}: shorter than its {64 << 20} bytes: changed while sent"
    )
    assert len(heads) == 1


def test_a_long_name_that_fits_is_saved(tmp_path: Path) -> None:
    """A 240-byte name: curl -o saves it; its temporary name is 24 bytes longer (D7)."""
    name = "a" * 240

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"payload")

    with ScriptedServer(handler) as srv:
        [result] = run([{"id": "1", "p": name}], srv.url("/"), save_body="{p}",
                       save_dir=str(tmp_path))
    assert (result.status, result.error) == (200, "")
    assert result.fields == {"saved_path": name, "saved_bytes": 7}
    assert files_in(tmp_path) == {name: b"payload"}


# -- --resume removes only what a stopped run left (D4) ----------------------------------------


class HalfThenRest:
    """A raw server whose one answer stops halfway until ``go`` is set: a download in
    progress, for as long as the test needs."""

    def __init__(self) -> None:
        import socket

        self.half_sent, self.go = threading.Event(), threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
            self.half_sent.set()
            if self.go.wait(60):
                conn.sendall(b"56789")
                with contextlib.suppress(OSError):
                    conn.recv(1)  # until the client closes (drumfire resets)

    def __enter__(self) -> HalfThenRest:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.go.set()
        self.thread.join()
        self.listener.close()


def test_resume_leaves_the_temporary_files_of_a_live_run(tmp_path: Path) -> None:
    """Another run downloading into the same --save-dir keeps its temporary file through a
    --resume (CLI), and a refused API call (resume=True on its locked output) removes
    nothing; a stopped run's temporary file is removed."""
    import time

    from drumfire import UsageError

    saved = tmp_path / "dl"
    (tmp_path / "a.csv").write_text("id\nlive\n")
    (tmp_path / "none.csv").write_text("id\n")
    with HalfThenRest() as server:
        first = subprocess.Popen(
            [*CLI, "run", str(tmp_path / "a.csv"), "--url", server.url, "--save-body",
             "{id}.bin", "--save-dir", str(saved), "-o", str(tmp_path / "a_out.csv"), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert server.half_sent.wait(60)
            for _ in range(1200):  # bounded: the first run writes its half body
                live = [p for p in saved.glob(f".live.bin.*{TEMP_SUFFIX}")
                        if p.stat().st_size == 5] if saved.exists() else []
                if live:
                    break
                time.sleep(0.05)
            [live_temp] = live
            stale = saved / f".gone.bin.0123abcd{TEMP_SUFFIX}"
            stale.write_bytes(b"left by a run that was killed")
            with pytest.raises(UsageError, match="being written by another drumfire run"):
                run_all(tmp_path / "none.csv", server.url, save_body="{id}.bin",
                        save_dir=str(saved), output=str(tmp_path / "a_out.csv"), resume=True)
            assert stale.exists()  # refused before it cleaned anything
            resumed = drumfire("run", tmp_path / "none.csv", "--url", server.url,
                               "--save-body", "{id}.bin", "--save-dir", saved,
                               "-o", tmp_path / "b_out.csv", "--resume", "-q")
            assert resumed.returncode == 0, resumed.stderr
            assert not stale.exists()
            assert live_temp.exists()
            server.go.set()
            assert first.wait(60) == 0, first.stderr.read() if first.stderr else ""
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
            if first.stderr is not None:
                first.stderr.close()
    assert read_csv(tmp_path / "a_out.csv")["live"]["saved_bytes"] == "10"
    assert files_in(saved) == {"live.bin": b"0123456789"}


def test_a_link_under_the_final_name_is_followed(tmp_path: Path) -> None:
    """As curl -o: the body goes to the file the link leads to, and the link stays (D10)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.bin").write_bytes(b"old")
    (tmp_path / "link.bin").symlink_to("real/target.bin")

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"payload")

    with ScriptedServer(handler) as srv:
        [result] = run([{"id": "1"}], srv.url("/"), save_body="link.bin",
                       save_dir=str(tmp_path))
    assert result.fields == {"saved_path": "link.bin", "saved_bytes": 7}
    assert (tmp_path / "link.bin").is_symlink()
    assert (tmp_path / "real" / "target.bin").read_bytes() == b"payload"
    assert files_in(tmp_path / "real") == {"target.bin": b"payload"}


def test_an_answer_that_cannot_be_saved_is_not_retried_or_followed(tmp_path: Path) -> None:
    """A 503 or a 302 whose body cannot be saved (a file where its folder should be)
    ends the row there with its status and the save error: no retry, no redirect,
    as the README says (the status alone used to send it again, or follow it)."""
    (tmp_path / "afile").write_bytes(b"")

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target == "/busy":
            return respond(503, b"later", headers=[("Retry-After", "0")])
        if target == "/moved":
            return respond(302, b"see there", headers=[("Location", "/there")])
        return respond(200, b"there")

    rows = [{"id": "busy"}, {"id": "moved"}]
    with ScriptedServer(handler) as srv:
        results = {r.id: r for r in run(rows, srv.url("/{id}"), save_body="afile/{id}",
                                          save_dir=str(tmp_path), save_status="all",
                                          follow_redirects=5, retry=NO_WAIT)}
        targets = [r.target for r in srv.requests]
    assert targets.count("/busy") == 1
    assert "/there" not in targets
    assert (results["busy"].status, results["busy"].attempts) == (503, 1)
    assert (results["moved"].status, results["moved"].attempts) == (302, 1)
    for r in results.values():
        assert r.error == f"save: afile/{r.id}: Not a directory"


def test_a_file_is_taken_as_an_answer_only_when_only_successes_are_saved(
    tmp_path: Path,
) -> None:
    """With --save-status all a file under a row's name may be a 503's body: --resume
    sends a row missing from the output again rather than write that file as its
    answer (a --retry-failed run stopped before re-sending left its failures so, and
    the next --resume wrote them as successes)."""
    (tmp_path / "in.csv").write_text("id\nok\nbad\n")
    out, saved = tmp_path / "out.csv", tmp_path / "dl"

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(503, b"down") if target == "/bad" else respond(200, b"fine")

    with ScriptedServer(handler) as srv:
        args = ["run", tmp_path / "in.csv", "--url", srv.url("/{id}"), "--save-body",
                "{id}.bin", "--save-dir", saved, "--save-status", "all", "-o", out, "-q",
                "--retries", "0"]
        first = drumfire(*args)
        assert first.returncode == 0, first.stderr
        assert files_in(saved) == {"ok.bin": b"fine", "bad.bin": b"down"}
        # The failed row out of the output, as a stopped --retry-failed run leaves it.
        lines = out.read_text().splitlines()
        out.write_text("\n".join(line for line in lines if not line.startswith("bad,")) + "\n")
        sent = len(srv.requests)
        again = drumfire(*args, "--resume")
        assert again.returncode == 0, again.stderr
        resent = [r.target for r in srv.requests[sent:]]
    assert resent == ["/bad"]
    rows = read_csv(out)
    assert (rows["bad"]["status"], rows["bad"]["attempts"]) == ("503", "1")


@pytest.mark.parametrize(
    ("stop", "resumer"),
    [(signal.SIGKILL, "cli"), (signal.SIGINT, "cli"), (signal.SIGKILL, "api")],
    ids=["kill-9", "ctrl-c", "kill-9-then-api"],
)
def test_a_stopped_retry_failed_run_leaves_no_stale_file_to_claim(
    tmp_path: Path, stop: signal.Signals, resumer: str
) -> None:
    """--retry-failed 200 removes its rows from the output, then is stopped (kill -9, or
    Ctrl-C) before it re-sent them: the next --resume (or resume=True) sends them, rather
    than take the old success files under their names as their answers (status empty,
    attempts 0)."""
    (tmp_path / "in.csv").write_text("id\na\nb\nc\n")
    out, saved = tmp_path / "out.csv", tmp_path / "dl"
    version = [1]
    held, release = threading.Event(), threading.Event()

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if version[0] == 2:  # the --retry-failed run: its first request is held
            held.set()
            release.wait(60)
        return respond(200, b"version %d of %s" % (version[0], target.encode()))

    with ScriptedServer(handler) as srv:
        args = ["run", tmp_path / "in.csv", "--url", srv.url("/{id}"), "--save-body",
                "{id}.bin", "--save-dir", saved, "-o", out, "-q", "-c", "1"]
        assert drumfire(*args).returncode == 0
        version[0] = 2
        proc = subprocess.Popen([*CLI, *map(str, args), "--retry-failed", "200"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert held.wait(60), proc.stderr.read() if proc.stderr else ""
            os.kill(proc.pid, stop)
            assert proc.wait(60) == (130 if stop == signal.SIGINT else -signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            release.set()
            if proc.stderr is not None:
                proc.stderr.close()
        kept = read_csv(out)
        assert not {"b", "c"} & set(kept)  # removed, never re-sent
        version[0] = 3
        sent = len(srv.requests)
        if resumer == "cli":
            again = drumfire(*args, "--resume")
            assert again.returncode == 0, again.stderr
        else:
            run_all(tmp_path / "in.csv", srv.url("/{id}"), save_body="{id}.bin",
                    save_dir=saved, output=out, resume=True, concurrency=1)
        resent = sorted(r.target for r in srv.requests[sent:])
    assert resent == ["/a", "/b", "/c"]
    rows = read_csv(out)
    assert sorted(rows) == ["a", "b", "c"]
    for name, row in rows.items():
        assert (row["status"], row["attempts"], row["error"]) == ("200", "1", ""), row
        assert row["saved_bytes"] == str(len(b"version 3 of /" + name.encode()))
    assert files_in(saved) == {f"{n}.bin": b"version 3 of /%s" % n.encode() for n in "abc"}
    # The run that completed the batch leaves no list of rows to send again beside the
    # output; only the time its batch began (see test_resume_takes_no_file_of_an_earlier_batch).
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.csv.drumfire-batch", "dl", "in.csv", "out.csv"
    ]


def test_rows_to_send_again_stay_listed_until_a_run_reads_the_whole_input(
    tmp_path: Path,
) -> None:
    """A --resume limited by -n leaves the list of rows to send again as it is (the rows
    past N are not read); the run that reads the whole input sends them and removes it."""
    from drumfire._outfile import AGAIN_SUFFIX, OutputLock
    from drumfire._resume import DoneIds

    (tmp_path / "in.csv").write_text("id\na\nb\n")
    out, saved = tmp_path / "out.csv", tmp_path / "dl"
    saved.mkdir()
    out.write_text("id,status,elapsed_ms,attempts,error,saved_path,saved_bytes\n"
                   "a,200,1.000,1,,a.bin,9\n")
    (saved / "a.bin").write_bytes(b"body of a")
    (saved / "b.bin").write_bytes(b"old b")  # a stopped --retry-failed run dropped b
    lock = OutputLock.acquire(str(out))
    assert lock is not None
    lock.remember_again(DoneIds(["b"]))
    lock.close()
    marker = tmp_path / f".out.csv{AGAIN_SUFFIX}"

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"body of " + target.lstrip("/").encode())

    with ScriptedServer(handler) as srv:
        args = ["run", tmp_path / "in.csv", "--url", srv.url("/{id}"), "--save-body",
                "{id}.bin", "--save-dir", saved, "-o", out, "-q", "--resume"]
        first = drumfire(*args, "-n", "1")
        assert first.returncode == 0, first.stderr
        assert marker.exists()
        whole = drumfire(*args)
        assert whole.returncode == 0, whole.stderr
        assert [r.target for r in srv.requests] == ["/b"]
    assert not marker.exists()
    assert read_csv(out)["b"]["attempts"] == "1"
    assert (saved / "b.bin").read_bytes() == b"body of b"


@pytest.mark.parametrize(
    ("case", "by"),
    [("overwrite", "cli"), ("shared", "cli"), ("overwrite", "api")],
    ids=["after-overwrite", "shared-save-dir", "after-overwrite-api"],
)
def test_resume_takes_no_file_of_an_earlier_batch(tmp_path: Path, case: str, by: str) -> None:
    """A --resume took a complete file under a missing row's name as its answer even when
    an earlier batch wrote it (before --overwrite, or for another output sharing the
    --save-dir): the old answer stood for the new batch's row. The output now keeps
    when its batch began (a hidden file beside it), and an older file is sent again;
    a file of the batch itself is still taken."""
    (tmp_path / "in.csv").write_text("id\na\nb\nc\nd\n")
    first_out, saved = tmp_path / "out.csv", tmp_path / "dl"
    out = first_out if case == "overwrite" else tmp_path / "other.csv"
    version = [b"one"]

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, version[0] + target.encode())

    with ScriptedServer(handler) as srv:
        url = srv.url("/{id}")
        args = ["run", tmp_path / "in.csv", "--url", url, "--save-body", "{id}.bin",
                "--save-dir", saved, "-q"]  # fmt: skip
        first = drumfire(*args, "-o", first_out)
        assert first.returncode == 0, first.stderr
        assert files_in(saved) == {f"{i}.bin": b"one/" + i.encode() for i in "abcd"}
        version[0] = b"two"
        # A new batch of the output (or of another output) stopped after two rows...
        if by == "cli":
            more = ["--overwrite"] if case == "overwrite" else []
            stopped = drumfire(*args, "-o", out, *more, "-n", "2")
            assert stopped.returncode == 0, stopped.stderr
        else:
            list(run([{"id": "a"}, {"id": "b"}], url, save_body="{id}.bin",
                     save_dir=str(saved), output=str(out), overwrite=True))  # fmt: skip
        # ... and b's row lost though its file is whole (the second before a kill -9).
        lines = out.read_text().splitlines()
        out.write_text("\n".join(line for line in lines if not line.startswith("b,")) + "\n")
        sent = len(srv.requests)
        if by == "cli":
            again = drumfire(*args, "-o", out, "--resume")
            assert again.returncode == 0, again.stderr
        else:
            rows = [{"id": i} for i in "abcd"]
            list(run(rows, url, save_body="{id}.bin", save_dir=str(saved), output=str(out),
                     resume=True))  # fmt: skip
        resent = sorted(r.target for r in srv.requests[sent:])
    assert resent == ["/c", "/d"]  # batch one's files are not this batch's answers
    assert files_in(saved) == {f"{i}.bin": b"two/" + i.encode() for i in "abcd"}
    rows_out = read_csv(out)
    assert sorted(rows_out) == ["a", "b", "c", "d"]
    assert rows_out["b"]["attempts"] == "0"  # its own batch's file: taken
    assert (rows_out["c"]["attempts"], rows_out["d"]["attempts"]) == ("1", "1")


def _keeps_extended_attributes(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.drumfire.probe", b"1")
    except (OSError, AttributeError):
        return False
    finally:
        probe.unlink()
    return True


@pytest.mark.parametrize("by", ["cli", "api"])
def test_resume_tells_its_batch_s_files_by_name_not_by_time(tmp_path: Path, by: str) -> None:
    """The batch's start time told its saved files from others: a file another output
    saved into the same --save-dir *during* the batch was taken as a missing row's
    answer, and one of the batch itself was sent again once the clock had been set back.
    Each saved file now names its output's batch (an extended attribute), and a resume
    takes the files that name its own, whatever their times."""
    if not _keeps_extended_attributes(tmp_path):
        pytest.skip("this file system keeps no extended attributes (the times tell)")
    (tmp_path / "in.csv").write_text("id\na\nb\nc\nd\n")
    out, other, saved = tmp_path / "out.csv", tmp_path / "other.csv", tmp_path / "dl"

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"answer" + target.encode())

    with ScriptedServer(handler) as srv:
        url = srv.url("/{id}")
        save = ["--save-body", "{id}.bin", "--save-dir", saved, "-q"]
        # This output's batch: a and b, then stopped (b's row lost: a kill -9).
        first = drumfire("run", tmp_path / "in.csv", "--url", url, *save, "-o", out, "-n", "2")
        assert first.returncode == 0, first.stderr
        named = (tmp_path / ".out.csv.drumfire-batch").read_text().splitlines()
        assert named[1].startswith("batch "), named
        lines = out.read_text().splitlines()
        out.write_text("\n".join(line for line in lines if not line.startswith("b,")) + "\n")
        # Another output's batch saves c and d into the same directory meanwhile.
        (tmp_path / "cd.csv").write_text("id\nc\nd\n")
        meanwhile = drumfire("run", tmp_path / "cd.csv", "--url", url, *save, "-o", other)
        assert meanwhile.returncode == 0, meanwhile.stderr
        # b's file bears a time before the batch began (the clock was set back since).
        began = (tmp_path / ".out.csv.drumfire-batch").stat().st_mtime
        os.utime(saved / "b.bin", (began - 3600, began - 3600))
        sent = len(srv.requests)
        if by == "cli":
            again = drumfire("run", tmp_path / "in.csv", "--url", url, *save, "-o", out,
                             "--resume")  # fmt: skip
            assert again.returncode == 0, again.stderr
        else:
            list(run([{"id": i} for i in "abcd"], url, save_body="{id}.bin",
                     save_dir=str(saved), output=str(out), resume=True))  # fmt: skip
        resent = sorted(r.target for r in srv.requests[sent:])
    assert resent == ["/c", "/d"]  # the other output's files are not this batch's answers
    rows_out = read_csv(out)
    assert sorted(rows_out) == ["a", "b", "c", "d"]
    assert rows_out["b"]["attempts"] == "0"  # its own batch's file, whatever its time
    assert rows_out["b"]["saved_path"] == "b.bin"


@pytest.mark.parametrize("by", ["cli", "api"])
def test_resume_takes_no_file_another_row_saved_under_the_same_name(
    tmp_path: Path, by: str
) -> None:
    """Rows whose paths are the same ('{cat}.txt'): a run stopped after two rows left
    a.txt and b.txt, and --resume took them as the answers of all the rows never sent
    (status empty, attempts 0, another row's hash). Each saved file now names its row
    too, and a resume takes a file only as its own row's answer."""
    if not _keeps_extended_attributes(tmp_path):
        pytest.skip("this file system keeps no extended attributes (the times tell)")
    (tmp_path / "in.csv").write_text(
        "id,cat\n" + "".join(f"r{i},{'ab'[i % 2]}\n" for i in range(6))
    )
    out, saved = tmp_path / "out.csv", tmp_path / "dl"

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"answer to " + target.encode())

    with ScriptedServer(handler) as srv:
        url = srv.url("/{id}")
        save = ["--save-body", "{cat}.txt", "--save-dir", saved, "-q", "-c", "1"]
        first = drumfire("run", tmp_path / "in.csv", "--url", url, *save, "-o", out, "-n", "2")
        assert first.returncode == 0, first.stderr
        if by == "cli":
            again = drumfire("run", tmp_path / "in.csv", "--url", url, *save, "-o", out,
                             "--resume")  # fmt: skip
            assert again.returncode == 0, again.stderr
        else:
            list(run(tmp_path / "in.csv", url, save_body="{cat}.txt", save_dir=str(saved),
                     output=str(out), resume=True, concurrency=1))  # fmt: skip
        sent = [r.target for r in srv.requests]
    assert sent == [f"/r{i}" for i in range(6)]  # each row its own request
    rows_out = read_csv(out)
    assert all(rows_out[f"r{i}"]["attempts"] == "1" for i in range(6)), rows_out
    assert (saved / "a.txt").read_bytes() == b"answer to /r4"
    assert (saved / "b.txt").read_bytes() == b"answer to /r5"

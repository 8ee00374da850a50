"""What a ``--cluster`` run leaves in the temporary directory of its machines: nothing.

A task's scratch files (its byte range of the input, the ``--parse`` file) live in
its Dask worker's own local directory, which the worker's nanny removes when the
worker ends, however it ends; a stopped run's LocalCluster kills its busy workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from servers import Action, ScriptedServer, respond

pytest.importorskip("distributed")

pytestmark = [pytest.mark.timeout(300)]

WAIT = 120.0  # the most any awaited event may take on a loaded machine

PARSE = '''
def parse(response):
    return {"n": 1}
'''


def ours(tmp: Path) -> list[str]:
    """drumfire's files and directories anywhere under ``tmp``."""
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("drumfire-*"))


def test_a_stopped_run_leaves_no_scratch_directory(tmp_path: Path) -> None:
    # SIGTERM while a partition waits for its answer: the LocalCluster is closed and the
    # busy worker killed, so the task's `with TemporaryDirectory()` never ended: an empty
    # /tmp/drumfire-part-* was left by every such run (over 100 on the test machine).
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    src = tmp_path / "in.csv"
    src.write_text("id,q\n" + "".join(f"r{i},{'HOLD' if i == 0 else i}\n" for i in range(40)))
    parse = tmp_path / "fields.py"
    parse.write_text(PARSE)
    out = tmp_path / "out.parquet"
    arrived, release = threading.Event(), threading.Event()

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if parse_qs(urlsplit(target).query)["q"][0] == "HOLD":
            arrived.set()
            release.wait(WAIT)
        return respond(200, {})

    with ScriptedServer(handler) as server:
        args = ["run", src, "--url", server.base_url + "/x?q={q}", "-o", out, "--parse",
                f"{parse}:parse", "--cluster", "local:1", "--timeout", "100"]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", *map(str, args)],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "TMPDIR": str(tmp)},  # the worker processes inherit it
        )
        try:
            assert arrived.wait(WAIT), "the held request never came"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=WAIT)
        finally:
            release.set()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 143, err
    assert ours(tmp) == []

"""A real Jupyter kernel runs drumfire against the demo server (issue 16).

nbclient executes a notebook in an ipykernel started from this Python; the
notebook's outputs and the widget state the kernel sent over iopub show the
progress bar and the run's figures. Nothing here waits on the clock: every
step waits for the kernel's messages, bounded by nbclient's timeouts.
"""

from __future__ import annotations

import gc
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
jupyter_client = pytest.importorskip("jupyter_client")

from drumfire.demo import DemoServer  # noqa: E402

pytestmark = pytest.mark.timeout(300)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
ROWS = 300


@pytest.fixture
def kernel_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A kernel manager for an ipykernel of this very Python (not whatever 'python3' is)."""
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core warns otherwise
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "drumfire-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "drumfire test",
                "language": "python",
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    km = KernelManager(kernel_name="drumfire-test", kernel_spec_manager=specs)
    try:
        yield km
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        # nbclient leaves its client's sockets to the garbage collector: collect
        # them here, so that no ResourceWarning comes later, blamed on another test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del km
            gc.collect()


def execute(cells: list[str], km: Any) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=120,
        startup_timeout=120,
        store_widget_state=True,
        allow_errors=False,
    )
    client.execute()
    return nb


def texts(cell: Any) -> str:
    """Everything a cell printed or displayed, as text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            data = output.get("data", {})
            parts.append(str(data.get("text/html", "")) + str(data.get("text/plain", "")))
    return "\n".join(parts)


def widget_states(nb: Any) -> list[dict[str, Any]]:
    store = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return [model["state"] for model in store.get("state", {}).values()]


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def test_a_notebook_shows_a_progress_widget_and_the_run_figures(
    demo: DemoServer, kernel_manager: Any
) -> None:
    url = demo.base_url + "/echo?n={n}"
    nb = execute(
        [
            "import drumfire",
            f"rows = [{{'n': i}} for i in range({ROWS})]",
            # the default: on, since this is a kernel
            f"it = drumfire.run(rows, {url!r})\n"
            "results = list(it)\n"
            "print('rows', len(results), 'stats', it.stats.summary()['rows'])",
            # progress=True does not raise TypeError; run_all returns the figures
            f"frame, stats = drumfire.run_all(rows, {url!r}, progress=True, "
            "return_stats=True, as_frame=True)\n"
            "print('frame', len(frame), 'ok', stats.ok, 'attrs', frame.attrs['drumfire']['rows'])",
            # progress=False: nothing displayed
            f"quiet = drumfire.run_all(rows, {url!r}, progress=False)\nprint('quiet', len(quiet))",
        ],
        kernel_manager,
    )
    run_cell, all_cell, quiet_cell = nb.cells[2], nb.cells[3], nb.cells[4]
    assert f"rows {ROWS} stats {ROWS}" in texts(run_cell)
    assert f"frame {ROWS} ok {ROWS} attrs {ROWS}" in texts(all_cell)
    for cell in (run_cell, all_cell):
        views = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
        assert len(views) == 1, cell.outputs
    assert texts(quiet_cell).strip() == f"quiet {ROWS}"
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in quiet_cell.outputs)
    # The widgets' last state, as the kernel sent it: full bars, the figures in the text.
    states = widget_states(nb)
    bars = [s for s in states if s.get("_model_name") == "IntProgressModel"]
    assert len(bars) == 2
    assert all(b["value"] == ROWS and b["max"] == ROWS for b in bars)
    assert all(b["bar_style"] == "success" for b in bars)
    labels = [s["value"] for s in states if s.get("_model_name") == "HTMLModel"]
    finals = [v for v in labels if f"{ROWS:,} rows in" in v]
    assert len(finals) == 2, labels
    assert all("rows/s" in v and "p50" in v and f"ok {ROWS:,}" in v for v in finals)


def test_without_ipywidgets_the_notebook_gets_an_updating_html_line(
    demo: DemoServer, kernel_manager: Any
) -> None:
    url = demo.base_url + "/echo?n={n}"
    nb = execute(
        [
            "import sys\nsys.modules['ipywidgets'] = None  # as if not installed",
            "import drumfire\n"
            f"a = drumfire.run_all([{{'n': i}} for i in range({ROWS})], {url!r}, "
            "progress=True)\nprint('done', len(a))",
        ],
        kernel_manager,
    )
    cell = nb.cells[1]
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs)
    html = [o for o in cell.outputs if "text/html" in o.get("data", {})]
    # one display, updated in place (update_display_data) to the run's figures
    assert len(html) == 1, cell.outputs
    final = html[0]["data"]["text/html"]
    assert f"{ROWS:,} rows in" in final
    assert "rows/s" in final
    assert f"done {ROWS}" in texts(cell)


def test_an_async_run_in_a_kernel_shows_progress_and_keeps_its_figures(
    demo: DemoServer, kernel_manager: Any
) -> None:
    url = demo.base_url + "/echo?n={n}"
    nb = execute(
        [
            "import drumfire\n"
            f"run = drumfire.arun([{{'n': i}} for i in range({ROWS})], {url!r})\n"
            "got = [r async for r in run]\n"
            "print('async', len(got), run.stats.done, run.stats.summary()['rows_per_s'] > 0)",
        ],
        kernel_manager,
    )
    cell = nb.cells[0]
    assert f"async {ROWS} {ROWS} True" in texts(cell)
    assert any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs)


def test_bench_in_a_kernel_shows_a_widget_and_its_figures(
    demo: DemoServer, kernel_manager: Any
) -> None:
    url = demo.url("/json")
    nb = execute(
        [
            "from drumfire.bench import bench, abench",
            # the default: on, since this is a kernel (bench runs on a helper thread here)
            f"r = bench({url!r}, requests=300, concurrency=4)\nprint('bench', r.requests)",
            f"r = await abench({url!r}, requests=300, concurrency=4, progress=True)\n"
            "print('abench', r.requests)",
            f"r = bench({url!r}, requests=300, concurrency=4, progress=False)\n"
            "print('quiet', r.requests)",
            "import sys\nsys.modules['ipywidgets'] = None  # as if not installed\n"
            f"r = bench({url!r}, requests=300, concurrency=4)\nprint('html', r.requests)",
        ],
        kernel_manager,
    )
    bench_cell, abench_cell, quiet_cell, html_cell = nb.cells[1:]
    for cell, name in ((bench_cell, "bench"), (abench_cell, "abench")):
        assert f"{name} 300" in texts(cell)
        views = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
        assert len(views) == 1, cell.outputs
    assert texts(quiet_cell).strip() == "quiet 300"
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in quiet_cell.outputs)
    states = widget_states(nb)
    bars = [s for s in states if s.get("_model_name") == "IntProgressModel"]
    assert len(bars) == 2
    assert all(b["value"] == b["max"] and b["bar_style"] == "success" for b in bars)
    labels = [s["value"] for s in states if s.get("_model_name") == "HTMLModel"]
    finals = [v for v in labels if v.startswith("drumfire bench: 300 requests in")]
    assert len(finals) == 2, labels
    assert all("requests/s" in v and "p99" in v for v in finals)
    html = [o for o in html_cell.outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1, html_cell.outputs  # one line, updated in place to the figures
    assert "drumfire bench: 300 requests in" in html[0]["data"]["text/html"]
    assert "html 300" in texts(html_cell)


def _cell(
    kc: Any, code: str, on_sent: Any = None, on_text: Any = None
) -> tuple[str, list[str]]:
    """Run ``code``; ``on_sent()`` once it was sent, ``on_text(text)`` for what it prints
    (if given). Its stream text and the names of the errors it raised, once the kernel is
    idle again (bounded by timeouts)."""
    msg_id = kc.execute(code)
    if on_sent is not None:
        on_sent()
    text, errors = [], []
    while True:
        msg = kc.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
            if on_text is not None:
                on_text(content["text"])
        elif kind == "error":
            errors.append(content["ename"])
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(text), errors


def test_interrupting_a_cell_keeps_its_rows_and_the_kernel_runs_on(
    kernel_manager: Any, tmp_path: Path
) -> None:
    """The kernel's interrupt (the ■ button) during run_all: KeyboardInterrupt, the rows
    done and those in flight (cancelled) in the output, no engine thread left; the same
    cell again with resume=True sends the others, and the file holds each row once."""
    import threading

    from servers import ScriptedServer, respond

    gate, in_flight = threading.Event(), threading.Event()

    def handler(index: int, *_: Any) -> Any:
        if index >= 40 and not gate.is_set():  # 40 answered; the next 8 wait
            if index == 47:
                in_flight.set()
            gate.wait(120)
        return respond(200, {"index": index})

    out = tmp_path / "out.csv"
    km = kernel_manager
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        with ScriptedServer(handler) as srv:
            setup = (
                "import csv, threading, drumfire, pandas as pd\n"
                "df = pd.DataFrame({'id': [f'r{i}' for i in range(400)]}, "
                "index=range(1000, 1400))\n"
                f"kw = dict(output={str(out)!r}, concurrency=8, retries=0)"
            )
            assert _cell(kc, setup) == ("", [])
            call = f"res = drumfire.run_all(df, {srv.url('/{id}')!r}, **kw"

            def interrupt() -> None:
                assert in_flight.wait(120)
                km.interrupt_kernel()

            text, errors = _cell(kc, call + ")", on_sent=interrupt)
            assert errors == ["KeyboardInterrupt"], text
            gate.set()
            text, errors = _cell(
                kc,
                f"rows = list(csv.DictReader(open({str(out)!r})))\n"
                "print(len(rows), sum(r['error'] == 'cancelled' for r in rows), "
                "[t.name for t in threading.enumerate() if t.name == 'drumfire-engine'])",
            )
            assert (text.strip(), errors) == ("48 8 []", [])
            text, errors = _cell(
                kc,
                call + ", resume=True)\n"
                "rows = list(csv.DictReader(open(" + repr(str(out)) + ")))\n"
                "labels = (res.index == [1000 + int(i[1:]) for i in res['id']]).all()\n"
                "print(len(res), labels, len(rows), len({r['id'] for r in rows}), "
                "sorted({r['error'] for r in rows}))",
            )
            assert (text.strip(), errors) == ("360 True 400 400 ['']", [])
    finally:
        gate.set()
        kc.stop_channels()


def test_interrupting_a_cell_in_its_loop_body_stops_a_run_held_by_a_variable(
    kernel_manager: Any,
) -> None:
    """``it = drumfire.run(...)`` then ``for r in it: ...``: the interrupt lands in the
    loop body, not in the iterator, and ``it`` is not closed: the engine went on sending
    every row in the background. Now it stops (also for a loop in a later cell)."""
    import threading

    from servers import ScriptedServer, respond

    km = kernel_manager
    km.start_kernel()
    kc = km.client()
    kc.start_channels()

    def interrupt(text: str) -> None:
        if "got" in text:
            km.interrupt_kernel()

    loop = "for r in it:\n    print('got', flush=True)\n    threading.Event().wait()"
    check = (
        "engines = [t for t in threading.enumerate() if t.name == 'drumfire-engine']\n"
        "[t.join(60) for t in engines]\n"
        "print(it.stats.stopped, any(t.is_alive() for t in engines))"
    )
    try:
        kc.wait_for_ready(timeout=120)
        for later in (False, True):  # the loop in the run's cell, or in a later one
            gate = threading.Event()

            def handler(index: int, *_: Any, gate: threading.Event = gate) -> Any:
                if index >= 8:
                    gate.wait(120)  # a run left going cannot end before the check
                return respond(200, {"index": index})

            with ScriptedServer(handler) as srv:
                start = (
                    "import threading, drumfire\n"
                    f"it = drumfire.run([{{'n': i}} for i in range(400)], {srv.url('/{n}')!r}, "
                    "concurrency=4, progress=False)\n"
                )
                try:
                    if later:
                        assert _cell(kc, start) == ("", [])
                    text, errors = _cell(kc, loop if later else start + loop, on_text=interrupt)
                    assert errors == ["KeyboardInterrupt"], text
                    assert _cell(kc, check) == ("True False\n", [])
                finally:
                    gate.set()  # before the server stops: its threads wait on it
    finally:
        kc.stop_channels()

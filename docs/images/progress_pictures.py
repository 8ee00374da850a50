"""Make the README's pictures of the progress display from real runs against the demo server.

* ``run-progress.svg``: ``drumfire run`` on a pseudo-terminal; one frame of its
  live bar (past 60 %, once the ETA is known), as it drew it, saved by rich
  (``Text.from_ansi``, ``Console(record=True).save_svg``).
* ``notebook-progress.png``: a notebook executed in a real kernel (nbclient, the
  widget states as the kernel sent them), rendered by the ipywidgets HTML
  manager in headless Chromium: one finished run (``run_all``) and one caught
  in progress.

Needs the ``[test,notebook]`` extras, ``chromium`` and ``npm`` (which fetches
``@jupyter-widgets/html-manager``, the ipywidgets page renderer, into a
temporary directory)::

    python docs/images/progress_pictures.py
"""

from __future__ import annotations

import html
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from drumfire.demo import DemoServer

HERE = Path(__file__).resolve().parent
ROWS = 100_000
WIDTH = 140  # terminal columns
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"


def rows() -> list[dict[str, Any]]:
    # Mostly 200; a few 404 and 500, as a real batch has.
    return [
        {"id": i, "code": 404 if i % 97 == 0 else 500 if i % 331 == 0 else 200} for i in range(ROWS)
    ]


def terminal_picture(server: DemoServer, work: Path) -> None:
    """Run ``drumfire run`` on a pseudo-terminal; keep one frame of its bar past 60 %."""
    import csv
    import os
    import pty

    batch = work / "batch.csv"
    with batch.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "code"])
        writer.writeheader()
        writer.writerows(rows())
    argv = ["drumfire", "run", "batch.csv", "--url", server.base_url + "/status/{code}",
            "-o", "results.csv"]  # fmt: skip
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(WIDTH), "LINES": "24"}
    cli = [sys.executable, "-m", "drumfire.cli", *argv[1:]]
    proc = subprocess.Popen(cli, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)  # fmt: skip
    os.close(slave)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child's side is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.wait() == 0
    # The live display redraws its line in place: frames end with a carriage return.
    frames = [
        re.sub(r"\x1b\[(\?25[lh]|\d*[AK])", "", part)
        for part in shown.decode("utf-8", "replace").split("\r")
    ]
    chosen = None
    for frame in frames:
        done = re.search(r"([\d,]+)/([\d,]+) \(", frame)
        past = done is not None and int(done.group(1).replace(",", "")) >= 0.6 * ROWS
        if past and re.search(r"ETA \d", frame):
            chosen = frame.strip("\n")
            break
    assert chosen is not None, "no frame of the bar past 60 % with an ETA"
    console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
    console.print(Text("$ " + shlex.join(argv), style="bold"))
    console.print(Text.from_ansi(chosen))
    console.save_svg(str(HERE / "run-progress.svg"), title="drumfire run")


NOTEBOOK = [
    "import drumfire\n"
    "rows = [{'id': i, 'code': 404 if i % 97 == 0 else 500 if i % 331 == 0 else 200}\n"
    f"        for i in range({ROWS:_})]\n"
    "url = 'http://127.0.0.1:PORT/status/{code}'",
    "results = drumfire.run_all(rows, url)",
    "# caught in progress: the run goes on in a thread, the picture is taken now\n"
    "import threading, time\n"
    "it = drumfire.run(rows, url)\n"
    "threading.Thread(target=lambda: [r for r in it], daemon=True).start()\n"
    "while it.stats is None or it.stats.done < 0.6 * len(rows):\n"
    "    time.sleep(0.05)\n"
    "time.sleep(0.3)",
]


def notebook_picture(server: DemoServer, work: Path) -> None:
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    cells = [NOTEBOOK[0].replace("PORT", str(server.port)), *NOTEBOOK[1:]]
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(nb, timeout=300, store_widget_state=True)
    client.execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    subprocess.run(["npm", "pack", HTML_MANAGER], cwd=work, check=True, capture_output=True)
    tgz = next(work.glob("jupyter-widgets-html-manager-*.tgz"))
    with tarfile.open(tgz) as tar:
        tar.extract("package/dist/embed.js", work, filter="data")
    parts = []
    for number, cell in enumerate(nb.cells, 1):
        parts.append(
            f'<div class="cell"><div class="prompt">[{number}]:</div>'
            f"<pre>{html.escape(cell.source)}</pre></div>"
        )
        for output in cell.outputs:
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view is not None:
                parts.append(
                    '<div class="out"><script type="application/vnd.jupyter.widget-view+json">'
                    f"{json.dumps(view)}</script></div>"
                )
    page = work / "notebook.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<script src='{(work / 'package/dist/embed.js').as_uri()}'></script>"
        "<style>body{font:14px sans-serif;margin:16px;background:#fff}"
        ".cell{display:flex;gap:8px;margin-top:10px}"
        ".prompt{color:#307fc1;font:13px monospace;width:40px;padding-top:8px}"
        "pre{flex:1;margin:0;background:#f7f7f7;border:1px solid #e0e0e0;padding:8px;"
        "font-size:13px}.out{margin:6px 0 0 48px}</style></head><body>"
        '<script type="application/vnd.jupyter.widget-state+json">'
        f"{json.dumps(state)}</script>" + "".join(parts) + "</body></html>",
        encoding="utf-8",
    )
    chromium = shutil.which("chromium") or "chromium"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=5000",
         f"--screenshot={HERE / 'notebook-progress.png'}", "--window-size=1100,430",
         page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="drumfire-pictures-") as tmp,
        DemoServer(latency=0.002, jitter=0.004) as server,
    ):
        terminal_picture(server, Path(tmp))
        notebook_picture(server, Path(tmp))
    print(f"wrote {HERE / 'run-progress.svg'} and {HERE / 'notebook-progress.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

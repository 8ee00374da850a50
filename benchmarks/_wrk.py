"""wrk ``-t1 -cN`` with a Lua script rotating over a file of URL paths; its report
parsed into a :class:`WrkResult`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from _inputs import LOOPBACK
from _measure import RunResult, run_measured

__all__ = ["WRK_LUA", "WrkResult", "parse_wrk_output", "run_wrk"]

# --------------------------------------------------------------------------- wrk

WRK_LUA = """\
-- Rotate over the URL paths listed (one per line) in the file given after `--`.
local paths = {}
local i = 0

init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  if #paths == 0 then error("no paths in " .. tostring(args[1])) end
end

request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
"""

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_METRIC_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparsable wrk time {text!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


@dataclasses.dataclass
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    latency_avg_ms: float
    latency_stdev_ms: float
    latency_max_ms: float
    latency_percentiles_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    run: RunResult

    @property
    def cpu_us_per_request(self) -> float:
        return self.run.cpu_s / max(self.requests, 1) * 1e6


def parse_wrk_output(text: str, run: RunResult) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.M)
    lat = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if not (rps and total and lat):
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    pct = {
        m.group(1): _ms(m.group(2))
        for m in re.finditer(r"^\s*(\d+(?:\.\d+)?)%\s+(\S+)\s*$", text, re.M)
    }
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return WrkResult(
        requests=int(total.group(1)),
        duration_s=_ms(total.group(2) + total.group(3)) / 1e3,
        requests_per_s=float(rps.group(1)),
        latency_avg_ms=_ms(lat.group(1)),
        latency_stdev_ms=_ms(lat.group(2)),
        latency_max_ms=_ms(lat.group(3)),
        latency_percentiles_ms=pct,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        run=run,
    )


def run_wrk(
    base_url: str,
    paths_file: Path,
    *,
    duration_s: float = 10.0,
    threads: int = 1,
    connections: int = 8,
    workdir: Path,
) -> WrkResult:
    """``wrk -tT -cC -dNs --latency -s rotate.lua URL -- PATHS``, parsed."""
    if not base_url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("benchmarks only target 127.0.0.1")
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    script = workdir / "rotate_paths.lua"
    if not script.exists():
        script.write_text(WRK_LUA)
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base_url,
        "--",
        str(paths_file),
    ]
    run = run_measured(argv, timeout_s=duration_s + 60).check()
    return parse_wrk_output(run.stdout, run)

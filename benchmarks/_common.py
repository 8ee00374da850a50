"""Helpers shared by the drumfire benchmark scripts, one module per concern.

Everything here talks to 127.0.0.1 only, and every child process runs under a
time limit: a benchmark can never send unbounded traffic nor hang forever.

* :mod:`_inputs` -- the OSRM-shaped JSON document, coordinate CSVs and URL-path files;
* :mod:`_measure` -- wall time, CPU and max RSS of one child process (``os.wait4``);
* :mod:`_nginx` -- a private nginx on a free loopback port answering one fixed document;
* :mod:`_wrk` -- wrk with a Lua script rotating over a file of paths, its report parsed;
* :mod:`_clients` -- the drumfire and aiohttp command lines;
* :mod:`_rounds` -- machine facts, alternating rounds, the table and JSON report, and the
  command-line arguments shared by ``bench_nginx.py`` and ``bench_osrm.py``.

This module re-exports them for the scripts (``import _common as c``).
"""

from __future__ import annotations

from _clients import (
    aiohttp_argv,
    drumfire_argv,
    drumfire_available,
    drumfire_command,
    pipelined_argv,
    python_env,
)
from _inputs import (
    ALL_TOOLS,
    BENCH_DIR,
    LOOPBACK,
    OSRM_LIKE_BODY,
    OSRM_PATH_TEMPLATE,
    PAIR_COLUMNS,
    REPO_ROOT,
    SRC_DIR,
    random_coordinate_rows,
    read_output_csv,
    rows_to_paths,
    write_paths_file,
    write_rows_csv,
)
from _measure import (
    DEFAULT_RUN_TIMEOUT_S,
    RunResult,
    proc_cpu_seconds,
    process_tree,
    run_measured,
    system_busy_seconds,
)
from _nginx import (
    NginxServer,
    free_port,
    nginx_config,
    nginx_server,
)
from _rounds import (
    Measurement,
    add_common_arguments,
    client_runner,
    drumfire_usable,
    exit_on_signals,
    format_table,
    machine_info,
    measure_client,
    measure_wrk,
    parse_tools,
    preflight,
    report,
    run_rounds,
    start,
    summarize,
    write_json,
)
from _wrk import (
    WRK_LUA,
    WrkResult,
    parse_wrk_output,
    run_wrk,
)

__all__ = [
    "ALL_TOOLS",
    "BENCH_DIR",
    "DEFAULT_RUN_TIMEOUT_S",
    "LOOPBACK",
    "OSRM_LIKE_BODY",
    "OSRM_PATH_TEMPLATE",
    "PAIR_COLUMNS",
    "REPO_ROOT",
    "SRC_DIR",
    "WRK_LUA",
    "Measurement",
    "NginxServer",
    "RunResult",
    "WrkResult",
    "add_common_arguments",
    "aiohttp_argv",
    "client_runner",
    "drumfire_argv",
    "drumfire_available",
    "drumfire_command",
    "drumfire_usable",
    "exit_on_signals",
    "format_table",
    "free_port",
    "machine_info",
    "measure_client",
    "measure_wrk",
    "nginx_config",
    "nginx_server",
    "parse_tools",
    "parse_wrk_output",
    "pipelined_argv",
    "preflight",
    "proc_cpu_seconds",
    "process_tree",
    "python_env",
    "random_coordinate_rows",
    "read_output_csv",
    "report",
    "rows_to_paths",
    "run_measured",
    "run_rounds",
    "run_wrk",
    "start",
    "summarize",
    "system_busy_seconds",
    "write_json",
    "write_paths_file",
    "write_rows_csv",
]

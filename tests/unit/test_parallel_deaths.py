"""The one line a -p N run prints when worker processes died (see drumfire._parallel)."""

from __future__ import annotations

from drumfire._progress import format_deaths

ONE = "worker process 1 of 2 (pid 7) was killed by SIGKILL"
TWO = "worker process 2 of 3 (pid 9) exited with status 1"


def test_one_death_names_the_worker_its_end_and_its_rows() -> None:
    assert format_deaths([(ONE, 412)], stopped=False) == (
        "drumfire: error: worker process 1 of 2 (pid 7) was killed by SIGKILL; the 412 rows it "
        "held without an answer are recorded as cancelled (any it had sent may have reached the "
        "server), which --resume sends again"
    )


def test_several_deaths_are_one_line() -> None:
    line = format_deaths([(ONE, 1), (TWO, 1_500)], stopped=True)
    assert "\n" not in line
    assert line.startswith(f"drumfire: error: {ONE} and {TWO}; the 1,501 rows they held ")
    assert line.endswith("; no worker was left, so the run stopped: the rows not sent are left "
                         "for --resume")  # fmt: skip


def test_a_death_without_rows_still_says_so() -> None:
    assert format_deaths([(ONE, 0)], stopped=False).endswith("; it held no row without an answer")
    assert "the 1 row it held without an answer is recorded" in format_deaths(
        [(ONE, 1)], stopped=False
    )

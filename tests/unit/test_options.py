"""make_job checks every keyword argument once, and Job every field (made directly too):
one UsageError line naming it, never a TypeError mid-run (or rows that all end
``reset``); sizes and rates also take the command line's text, paths take os.PathLike."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import drumfire
from drumfire import Job, Retry, Timeouts, UsageError, make_job
from drumfire._bodies import FormField

URL = "http://127.0.0.1:9/{p}"


@pytest.mark.parametrize(
    ("kwargs", "start"),
    [
        ({"max_body": "lots"}, "max_body='lots': give a number of bytes, 0 or more, or a size"),
        ({"max_body": -1}, "max_body=-1: give a number of bytes, 0 or more"),
        ({"max_body": 3.5}, "max_body=3.5: "),
        ({"max_body": None}, "max_body=None: "),
        ({"max_body": True}, "max_body=True: "),
        ({"max_header_size": 100}, "max_header_size=100: give a number of bytes, 1K or more"),
        ({"max_header_size": "1x"}, "max_header_size='1x': "),
        ({"timeout": "5"}, "timeout='5': give a number of seconds above 0"),
        ({"timeout": 0}, "timeout=0: "),
        ({"timeout": math.nan}, "timeout=nan: "),
        ({"connect_timeout": None}, "connect_timeout=None: "),
        ({"concurrency": "8"}, "concurrency='8': give a whole number from 1 to 100000, or None"),
        ({"concurrency": 8.0}, "concurrency=8.0: "),
        ({"concurrency": 0}, "concurrency=0: "),
        ({"max_concurrency": None}, "max_concurrency=None: give a whole number from 1 to 100000"),
        ({"per_host_concurrency": "2"}, "per_host_concurrency='2': "),
        ({"retries": "3"}, "retries='3': give a whole number from 0 to 100"),
        ({"retries": -1}, "retries=-1: "),
        ({"pipeline": 0}, "pipeline=0: give a whole number from 1 to 256"),
        ({"follow_redirects": "yes"}, "follow_redirects='yes': "),
        ({"rate": "10/x"}, "rate='10/x': '10/x' is not a rate like 500, 500/s or 100/min"),
        ({"rate": 0}, "rate=0: give requests per second above 0"),
        ({"rate": math.inf}, "rate=inf: "),
        ({"per_host_rate": "0/s"}, "per_host_rate='0/s': '0/s': a rate must be above zero"),
        ({"ordered": "no"}, "ordered='no': give True or False"),
        ({"save_body": "{p}", "save_sha256": "no"}, "save_sha256='no': give True or False"),
        ({"save_body": "{p}", "save_status": True}, "save_status=True: give statuses as"),
        ({"save_body": "{p}", "save_status": []}, "save_status=[]: "),
        ({"save_body": "{p}", "save_status": [2.5]}, "save_status=[2.5]: "),
        ({"save_body": 5}, "save_body=5: give a path, a str or an os.PathLike"),
        ({"save_body": "{p}", "save_dir": b"d"}, "save_dir=b'd': "),
        ({"data_file": 1}, "data_file=1: "),
        ({"files": [("f",)]}, "files=[('f',)]: give a dict, or a list of (name, value) pairs"),
        ({"files": "{p}"}, "files='{p}': "),
        ({"form": 5}, "form=5: give a dict, or a list of 'name=value' strings or (name, value)"),
        ({"verify": None}, "verify=None: give True, False or the path of a CA file"),
        ({"cert": 3}, "cert=3: give a certificate file, or a (certificate, key) pair"),
        ({"retry": 3}, "retry=3: give a drumfire.Retry (or retries=N to make_job)"),
        ({"retry": 0}, "retry=0: give a drumfire.Retry"),  # not taken for None
        ({"keep": [1]}, "keep=(1,): give column names, a tuple of str"),
        ({"extract": {"a": 1}}, "extract=(('a', 1),): give (name, expression) pairs of str"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_keyword(
    kwargs: dict[str, Any], start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # save_dir defaults to the current directory
    with pytest.raises(UsageError) as info:
        make_job(URL, **kwargs)
    message = str(info.value)
    assert message.startswith(start), message
    assert "\n" not in message


def test_sizes_and_rates_take_the_command_lines_text() -> None:
    job = make_job(URL, max_body="64M", max_header_size="64K", rate="10/s", per_host_rate="1/min")
    assert (job.max_body, job.max_header_size) == (64 * 1024**2, 64 * 1024)
    assert (job.rate, job.per_host_rate) == (10.0, 1 / 60)
    job = make_job(URL, max_body=0, max_header_size=1024, rate=2, timeout=5, connect_timeout=1)
    assert (job.max_body, job.max_header_size, job.rate) == (0, 1024, 2.0)
    assert (job.timeouts.total, job.timeouts.connect) == (5.0, 1.0)
    job = make_job(URL, concurrency=None, retries=0, follow_redirects=3, pipeline=1)
    assert (job.concurrency, job.retry, job.follow_redirects) == (None, Retry(retries=0), 3)
    assert make_job(URL, follow_redirects=True).follow_redirects == 10


def test_paths_take_os_pathlike_and_statuses_take_numbers(tmp_path: Path) -> None:
    job = make_job(URL, data_file=Path("up") / "{p}")
    assert job.data_file == "up/{p}"
    job = make_job(URL, save_body=Path("x") / "{p}.bin", save_dir=tmp_path / "d", save_status=200)
    assert job.save is not None
    assert (job.save.template, job.save.directory) == ("x/{p}.bin", str(tmp_path / "d"))
    assert job.save.statuses == {200}
    job = make_job(URL, save_body="{p}", save_dir=tmp_path, save_status=["404", 200, "3xx"])
    assert job.save is not None
    assert job.save.statuses == {404, 200, *range(300, 400)}
    job = make_job(URL, save_body="{p}", save_dir=None, save_status=None)  # the defaults
    assert job.save is not None
    assert (job.save.directory, job.save.statuses) == (".", frozenset(range(200, 300)))


def test_files_and_form_take_requests_list_of_pairs() -> None:
    job = make_job(
        URL,
        files=[("f", "{a}"), ("f", (Path("{b}"), "image/png"))],
        form=[("n", "{n}"), "m=2"],
    )
    assert job.form == (
        FormField("n", "{n}"),
        FormField("m", "2"),
        FormField("f", "{a}", True),
        FormField("f", "{b}", True, "image/png"),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_body": -1}, "max_body=-1: give a number of bytes, 0 or more, or a size like '64M'"),
        ({"max_header_size": 100}, "max_header_size=100: give a number of bytes, 1K or more"),
        ({"concurrency": "8"}, "concurrency='8': give a whole number from 1 to 100000, or None"),
        ({"max_concurrency": 0}, "max_concurrency=0: give a whole number from 1 to 100000"),
        ({"rate": 0}, "rate=0: give requests per second above 0 (10), a rate like '10/s'"),
        ({"per_host_rate": "1/x"}, "per_host_rate='1/x': '1/x' is not a rate like 500"),
        ({"pipeline": 0}, "pipeline=0: give a whole number from 1 to 256"),
        ({"follow_redirects": True}, "follow_redirects=True: give a whole number from 0 to 100"),
        ({"unreachable_after": -1}, "unreachable_after=-1: give a whole number from 0 to"),
        ({"ordered": "no"}, "ordered='no': give True or False"),
        ({"verify": None}, "verify=None: give True or False"),
        ({"skip_saved": 1}, "skip_saved=1: give True or False"),
        ({"retry": 3}, "retry=3: give a drumfire.Retry"),
        ({"timeouts": 5}, "timeouts=5: give a drumfire.Timeouts"),
        ({"url": None}, "url=None: give the URL template, a str"),
        ({"method": 1}, "method=1: give a method, a str, or None"),
        ({"headers": "A: b"}, "headers='A: b': give 'Name: value' strings or (name, value) pairs"),
        ({"headers": (("A", 1),)}, "headers=(('A', 1),): give 'Name: value' strings or"),
        ({"data": {"a": 1}}, "data={'a': 1}: give the body, a str or bytes, or None (a form "
                             "body is its text, data='q={q}&n=1', not a dict as in requests; "
                             "a JSON body goes in json=)"),
        ({"extract": ("a=b",)}, "extract=('a=b',): give (name, expression) pairs of str"),
        ({"keep": "ab"}, "keep='ab': give column names, a tuple of str"),
        ({"id": 3}, "id=3: give a column name, a str, or None"),
        ({"cacert": 3}, "cacert=3: give a path, a str or an os.PathLike"),
        ({"data_file": b"x"}, "data_file=b'x': give a path, a str or an os.PathLike"),
        ({"form": ("a=b",)}, "form=('a=b',): give FormField parts (make_job's form=, files=)"),
        ({"save": "{id}.bin"}, "save='{id}.bin': give a SaveSpec (make_job's save_body=), or"),
        ({"cacert": "/no/such.pem"}, "cacert='/no/such.pem': no such file"),
        ({"key": "/no/such.pem"}, "key= needs cert= (the client certificate it belongs to)"),
        # two bodies, which make_job and the command line refuse (a Job took them, and
        # sent one, silently)
        ({"data": "x", "data_file": "{p}"}, "the body is given twice: data= and data_file=;"),
        ({"data": b"x", "form": (FormField("a", "b"),)}, "the body is given twice: data= and"),
        ({"data_file": "{p}", "form": (FormField("a", "b"),)}, "the body is given twice: data_f"),
    ],
)
def test_a_job_made_directly_is_checked_as_make_job_checks(
    kwargs: dict[str, Any], message: str
) -> None:
    """drumfire.Job(...) is public: its fields are checked as make_job's keywords are (the
    same checks, in Job itself), one UsageError line naming the field; it used to take
    anything and fail mid-run."""
    with pytest.raises(UsageError) as info:
        Job(**kwargs)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Timeouts(total=0), "Timeouts.total=0: give a number of seconds above 0"),
        (lambda: Timeouts(connect="1"), "Timeouts.connect='1': give a number of seconds"),
        (lambda: Timeouts(connect=-1.5), "Timeouts.connect=-1.5: give a number of seconds"),
        (lambda: Timeouts(total=math.nan), "Timeouts.total=nan: give a number of seconds"),
        (lambda: Timeouts(total=math.inf), "Timeouts.total=inf: give a number of seconds"),
        (lambda: Retry(retries=-1), "Retry.retries=-1: give a whole number from 0 to 100"),
        (lambda: Retry(retries=2.0), "Retry.retries=2.0: give a whole number from 0 to 100"),
        (lambda: Retry(backoff=-0.1), "Retry.backoff=-0.1: give a number of seconds, 0 or more"),
        (lambda: Retry(max_backoff=math.nan), "Retry.max_backoff=nan: give a number of seconds"),
        (lambda: Retry(max_retry_after=math.nan), "Retry.max_retry_after=nan: give a number"),
        (lambda: Retry(max_retry_after=-1), "Retry.max_retry_after=-1: give a number of seconds"),
        (lambda: Retry(budget=-1), "Retry.budget=-1: give a share, 0 or more"),
        (lambda: Retry(budget_floor=math.inf), "Retry.budget_floor=inf: give retries per second"),
        (lambda: Retry(statuses={"503"}), "Retry.statuses={'503'}: give HTTP statuses (100 to"),
        (lambda: Retry(statuses=[503, 600]), "Retry.statuses=[503, 600]: give HTTP statuses"),
        (lambda: Retry(statuses=503), "Retry.statuses=503: give HTTP statuses"),
        (lambda: Retry(unsafe="yes"), "Retry.unsafe='yes': give True or False"),
    ],
)
def test_the_settings_objects_check_their_own_values(
    make: Callable[[], object], message: str
) -> None:
    """Retry(...) and Timeouts(...) took a negative, NaN or infinite value and the run
    failed far from it (a NaN wait never fires); each is one line naming the field now."""
    with pytest.raises(UsageError) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_the_settings_objects_take_numbers_as_floats_and_any_statuses() -> None:
    """An int of seconds becomes a float and an iterable of statuses a frozenset, so
    equal settings compare and hash equal; 0 is a wait or a budget, never a timeout."""
    assert Timeouts(connect=1, total=2) == Timeouts(connect=1.0, total=2.0)
    assert Retry(statuses=[503, 429]) == Retry(statuses=frozenset({429, 503}))
    assert hash(Retry(statuses=[503])) == hash(Retry(statuses=frozenset({503})))
    zero = Retry(retries=0, backoff=0, max_backoff=0, max_retry_after=0, budget=0, budget_floor=0)
    assert (zero.backoff, zero.max_retry_after, zero.statuses) == (0.0, 0.0, Retry().statuses)
    assert Retry(statuses=()).statuses == frozenset()


def test_a_job_made_directly_takes_what_make_job_takes() -> None:
    """Sizes and rates as on the command line become numbers, lists tuples, paths str;
    dataclasses.replace checks again; every field has its check."""
    import dataclasses

    from drumfire._job import FIELD_CHECKS

    job = Job(URL, max_body="64M", rate="10/s", keep=["a"], headers=[["A", "b"], "C: d"],
              extract=[("d", "routes[0].duration")], data_file=Path("up/{p}.bin"))  # fmt: skip
    assert (job.max_body, job.rate, job.keep) == (64 * 1024**2, 10.0, ("a",))
    assert job.headers == (("A", "b"), "C: d")
    assert (job.extract, job.data_file) == ((("d", "routes[0].duration"),), "up/{p}.bin")
    with pytest.raises(UsageError, match=r"^the body is given twice: data= and data_file=; give"):
        dataclasses.replace(job, data="x")
    assert job == make_job(URL, max_body="64M", rate="10/s", keep=["a"],
                           headers=[("A", "b"), "C: d"], extract={"d": "routes[0].duration"},
                           data_file=Path("up/{p}.bin"))  # fmt: skip
    hash(job)  # a frozen value: its lists became tuples
    with pytest.raises(UsageError, match=r"^pipeline=0: "):
        dataclasses.replace(job, pipeline=0)
    assert [name for name, _ in FIELD_CHECKS] == [f.name for f in dataclasses.fields(Job)]


@pytest.mark.parametrize(
    ("call", "start"),
    [
        (lambda: drumfire.run_all([{"p": "a"}], URL, timout=3), "drumfire: no keyword argument "),
        (lambda: list(drumfire.run([{"p": "a"}], URL, rety=1)), "drumfire: no keyword argument "),
    ],
)
def test_an_unknown_keyword_is_one_line_with_the_nearest_one(call: Any, start: str) -> None:
    """Not Python's TypeError naming make_job, which the caller never called; nothing is sent."""
    with pytest.raises(UsageError) as info:
        call()
    message = str(info.value)
    assert message.startswith(start), message
    assert message.endswith(("timout=: did you mean timeout=?", "rety=: did you mean retry=?"))
    with pytest.raises(UsageError, match=r"^drumfire: no keyword argument zzz=$"):
        drumfire.run_all([{"p": "a"}], URL, zzz=1)


@pytest.mark.parametrize(
    ("name", "end"),
    [
        ("overwrit", ": did you mean overwrite=?"),  # the output's keywords are near too
        ("retry_failed", ": the command line's --retry-failed; in Python, run the failed rows "
                         "again"),  # not "did you mean retries=?", another setting
        ("format", ": the API's is input_format="),
    ],
)  # fmt: skip
def test_a_command_line_option_given_to_python_says_what_to_use(name: str, end: str) -> None:
    with pytest.raises(UsageError) as info:
        drumfire.run_all([{"p": "a"}], URL, **{name: True})
    assert str(info.value) == f"drumfire: no keyword argument {name}={end}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": ["status"]}, "output column 'status' is a column every row has; rename it in "
                               "the input (--keep cannot)"),
        ({"extract": {"status": "a"}}, "output column 'status' is a column every row has; "
                                       "choose another name for -e NAME=..."),
        ({"keep": ["a"], "extract": {"a": "b"}}, "output column 'a' is used twice; choose "
                                                 "another name for -e NAME=..."),
        ({"keep": ["a", "a"]}, "output column 'a' is used twice; name it once in --keep"),
    ],
)  # fmt: skip
def test_a_column_name_clash_says_what_can_be_renamed(kwargs: Any, message: str) -> None:
    # --keep copies an input column under its own name: it used to say "choose another
    # name for -e NAME=... or --keep", and --keep cannot rename.
    with pytest.raises(UsageError) as info:
        make_job("http://127.0.0.1:9/{a}", **kwargs).extractor()
    assert str(info.value) == message

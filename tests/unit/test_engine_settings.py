"""EngineSettings: the run's policy as one value object, and how Job.engine routes keywords."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from drumfire import Retry, Timeouts
from drumfire._engine import Engine, EngineSettings
from drumfire._job import make_job
from drumfire._settings import MAX_BODY, MAX_CONCURRENCY, PIPELINE
from drumfire._sources import rows_source


def test_defaults_come_from_the_shared_constants() -> None:
    settings = EngineSettings()
    assert settings.max_body == MAX_BODY
    assert settings.max_concurrency == MAX_CONCURRENCY
    assert settings.pipeline == PIPELINE
    assert settings.retry == Retry()
    assert settings.timeouts == Timeouts()


def test_immutable_comparable_and_picklable() -> None:
    settings = EngineSettings(concurrency=4, per_host_rate=2.5, keep=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.concurrency = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert "per_host_rate=2.5" in repr(settings)


@pytest.mark.parametrize(
    ("field", "message"),
    [("concurrency", "concurrency must be"), ("per_host_concurrency", "per-host concurrency")],
)
def test_a_limit_under_one_is_refused(field: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineSettings(**{field: 0})


def test_job_engine_puts_settings_in_settings_and_hooks_on_the_engine() -> None:
    def clock() -> float:
        return 0.0

    job = make_job("http://127.0.0.1:9/{n}", concurrency=3, per_host_rate=7.0, keep=("n",))
    engine = job.engine(rows_source([{"n": "1"}]), [].append, tick_interval=0.25, clock=clock)
    assert isinstance(engine, Engine)
    assert engine.settings.tick_interval == engine.tick_interval == 0.25
    assert engine.settings.concurrency == engine.concurrency == 3
    assert engine.settings.per_host_rate == 7.0
    assert engine.settings.keep == engine.keep == ("n",)
    assert engine.settings.id_column is None  # the input has no "id" column
    assert engine.clock is clock
    assert engine.settings == dataclasses.replace(
        EngineSettings(),
        keep=("n",),
        concurrency=3,
        per_host_rate=7.0,
        tick_interval=0.25,
    )


@pytest.mark.parametrize(
    ("kwargs", "bound"),
    [({}, 2048), ({"max_concurrency": 2000}, 8000), ({"concurrency": 100}, 1024),
     ({"concurrency": 1000}, 4000)],
)  # fmt: skip
def test_the_parked_rows_bound_is_the_one_the_readme_states(
    kwargs: dict[str, int], bound: int
) -> None:
    # README, "Throttling": max(1024, 4 × N), N being -c or else --max-concurrency.
    source = rows_source([{"n": "1"}])
    engine = make_job("http://127.0.0.1:1/{n}", **kwargs).engine(source, [].append)
    assert engine.park_limit == bound

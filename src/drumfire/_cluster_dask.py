"""``drumfire.cluster.run_dask``: a batch as a lazy Dask DataFrame of results (see
:mod:`drumfire._cluster`, which cuts the input and runs a partition's rows the same
way for ``drumfire run --cluster``).

``dask`` is imported inside the functions only: nothing in the core imports this module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._cluster import PARTITION_SIZE, Part, check_columns, plan_parts, split_job
from ._cluster_store import optional_module, require_dask
from ._cluster_task import part_results, run_source
from ._columns import BOOL, FLOAT, INT, STRING, UNFIT, convert, json_text
from ._errors import UsageError, as_called

if TYPE_CHECKING:
    from ._job import Job
    from ._result import Result

__all__ = ["run_dask"]


#: The pandas dtype of each column kind (see drumfire._columns), nullable: a row
#: without a value (a failed request, an error row) holds <NA> there.
_PANDAS = {BOOL: "boolean", INT: "Int64", FLOAT: "float64", STRING: "string"}


def _kind_of(dtype: Any) -> str:
    """The column kind that holds a kept column of this input dtype."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return BOOL
    if pd.api.types.is_integer_dtype(dtype):
        return INT
    if pd.api.types.is_float_dtype(dtype):
        return FLOAT
    return STRING


def _kinds(job: Job, dtypes: Mapping[str, str] | None, given: Any = None) -> dict[str, str]:
    """Each extracted and kept column's kind: ``dtypes``'s, else a kept column's
    input dtype (``given``: the input frame's dtypes), else string."""
    names = [n for n, _ in job.extract] + list(job.keep)
    declared = dict(dtypes or {})
    for name, kind in declared.items():
        if name not in names:
            raise UsageError(
                f"run_dask: dtypes names {name!r}, which is neither extracted nor kept"
            )
        if kind not in _PANDAS:
            raise UsageError(
                f"run_dask: dtypes: {name!r}: {kind!r} is not one of {', '.join(_PANDAS)}"
            )
    kinds = dict.fromkeys(names, STRING)
    if given is not None:
        for name in job.keep:
            if name in given:
                kinds[name] = _kind_of(given[name])
    kinds.update(declared)
    return kinds


def _frame(results: list[Result], job: Job, kinds: dict[str, str], index: Any = None) -> Any:
    """The rows as a pandas frame of the declared column types (the empty one: the meta).

    A value that does not fit its column (a string where ``dtypes`` says
    float64) ends the partition with a one-line :class:`UsageError`: no value
    is dropped without a word.
    """
    import pandas as pd

    kept = set(job.keep)  # a name both extracted and kept holds the kept value (as_dict)
    columns: dict[str, Any] = {
        "id": pd.Series([r.id for r in results], dtype="string"),
        "status": pd.Series([r.status for r in results], dtype="Int64"),
        "elapsed_ms": pd.Series([r.elapsed_ms for r in results], dtype="float64"),
        "attempts": pd.Series([r.attempts for r in results], dtype="int64"),
        "error": pd.Series([r.error for r in results], dtype="string"),
    }
    for name, kind in kinds.items():
        values = []
        for r in results:
            holder = r.kept if name in kept else r.fields
            given = holder.get(name) if holder else None
            value = convert(given, kind)
            if value is UNFIT:
                raise UsageError(
                    f"run_dask: row {r.id!r}: {json_text(given)} "
                    f"does not fit column {name!r} ({kind}); declare it 'string' in dtypes= "
                    "to keep any value"
                )
            values.append(value)
        columns[name] = pd.Series(values, dtype=_PANDAS[kind])
    frame = pd.DataFrame(columns)
    if index is not None:
        frame.index = index
    return frame


def _path_partition(part: Part, job: Job, kinds: dict[str, str]) -> Any:
    results, _ = part_results(part, dataclasses.replace(job, ordered=True))
    return _frame(results, job, kinds)


def _frame_partition(frame: Any, job: Job, kinds: dict[str, str]) -> Any:
    from ._sources import rows_source

    source = rows_source(frame)  # ids: the id column, else row numbers in the partition
    source.total = len(frame)
    results, _ = run_source(source, dataclasses.replace(job, ordered=True), -1)
    return _frame(results, job, kinds, frame.index if len(results) == len(frame) else None)


#: drumfire.run's arguments that run_dask does not take, and what to do instead.
_NOT_IN_RUN_DASK = {
    "output": "write the result frame (results.to_parquet(PATH)), or drumfire run --cluster -o DIR",
    "resume": "run_dask computes every partition; drumfire run --cluster --resume completes "
    "a dataset directory",
    "overwrite": "write the result frame where you choose",
    "progress": "Dask shows a computation's progress (distributed.progress)",
    "parse": "a parse function is not supported here; extract= the fields, or use drumfire "
    "run --cluster --parse",
}


def run_dask(
    data: Any,
    url: str = "{url}",
    *,
    workers: int | None = None,
    partition_size: int = PARTITION_SIZE,
    input_format: str | None = None,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    dtypes: Mapping[str, str] | None = None,
    **settings: Any,
) -> Any:
    """A lazy ``dask.dataframe.DataFrame`` of results, one partition per input partition.

    Args:
        data: a ``dask.dataframe.DataFrame`` (each partition is sent as one
            batch; the result keeps its index; without an ``id`` column a row's
            id is its row number within its partition), or the path of an input
            file, cut as ``drumfire run --cluster`` cuts it.
        url, settings: as :func:`drumfire.run` (``rate``, ``concurrency`` and
            ``max_concurrency`` are for the whole run: divided by ``workers``).
        workers: how many partitions run at once, to share the limits; default:
            the worker threads of the current Dask client, else 1.
        partition_size: input bytes per partition, for a path.
        input_format, encoding, delimiter: how a path is read, as
            :func:`drumfire.run` reads one (``delimiter``: a CSV's field
            separator, as ``--delimiter``); refused with a Dask frame.
        dtypes: the type of extracted or kept columns, by name: ``"bool"``,
            ``"int64"``, ``"float64"`` or ``"string"`` (nullable in pandas).
            Default: a kept column keeps its input frame's type; any other is
            ``"string"`` (JSON text for a number or an object, as the CSV has it).

    Nothing is sent until the frame is computed; rows are in input order
    within each partition. Columns: ``id status elapsed_ms attempts error``,
    the extracted names, then the kept columns (a ``parse`` function is not
    supported here). Every column has a declared type, so the frame's
    ``to_parquet`` writes one schema for all partitions.
    """
    require_dask("run_dask")
    dd = optional_module("dask.dataframe")

    from ._job import check_keywords, make_job

    for name, why in _NOT_IN_RUN_DASK.items():
        if name in settings:
            raise UsageError(f"run_dask: {name}= is not supported: {why}")
    check_keywords(settings, "run_dask")
    try:  # the checks are the command line's: named as this call names them (url=, keep=)
        job = make_job(url, **settings)
        job.extractor()
        if job.uses_files():  # as --cluster (the saved files would be on the workers, unnamed)
            raise UsageError(
                "run_dask: data_file=, files=, form= and save_body= are not supported on a "
                "cluster yet (as --cluster); use drumfire.run_all on one machine"
            )
        if workers is None:
            try:
                workers = sum(optional_module("distributed").default_client().nthreads().values())
            except ValueError:
                workers = 1
        task_job = split_job(job, workers or 1)
        if isinstance(data, str | os.PathLike):
            from ._sources import check_delimiter, format_for

            path = os.fspath(data)
            fmt = input_format or format_for(path, None)
            if delimiter is not None:
                delimiter = check_delimiter(delimiter, "delimiter")
            parts = plan_parts(path, fmt, encoding, partition_size, delimiter)
            check_columns(job, path, fmt, encoding, parts)
            kinds = _kinds(job, dtypes)
            meta = _frame([], job, kinds)
            return dd.from_map(_path_partition, parts, job=task_job, kinds=kinds, meta=meta)
        for name, value in (("input_format", input_format), ("delimiter", delimiter)):
            if value is not None:  # as drumfire.run says it for rows that are not a path
                raise UsageError(
                    f"run_dask: {name}= applies only when data is a file path; a Dask frame "
                    "is read already (dask.dataframe.read_csv(PATH, sep=...))"
                )
        import pandas as pd

        from ._sources import rows_source

        # Templates, keep= and id= against the frame's columns now, as drumfire.run does,
        # rather than in every task once computed.
        job.check(job.plan(), rows_source(pd.DataFrame(columns=list(data.columns))))
        kinds = _kinds(job, dtypes, data.dtypes)
        return data.map_partitions(_frame_partition, task_job, kinds, meta=_frame([], job, kinds))
    except UsageError as exc:
        named = as_called(exc)
        if named is exc:
            raise
        raise named from None

"""Request bodies: the Content-Type a body gets, JSON bodies (``--json``, ``json=``),
and a body compiled once and filled per row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from ._encode import Encoder, Fill, for_any, form_value, json_cell, json_chars, json_value, verbatim
from ._errors import TemplateError
from ._template import JSON_PLACEHOLDER, Template, as_text

__all__ = [
    "Body",
    "default_content_type",
    "is_json_type",
    "json_body",
    "json_template",
    "media_type_of",
]


def media_type_of(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def json_template(obj: Any) -> str:
    """The JSON body template for a ``json=`` object (a dict or list holding placeholders).

    A string that is exactly one placeholder (``"{n}"``) stands for the row's
    value as a JSON value; any other string is a JSON string, with
    placeholders inside it filled and escaped. Everything else is itself.
    """
    if isinstance(obj, str):
        m = JSON_PLACEHOLDER.fullmatch(obj)
        return obj if m is not None else orjson.dumps(obj).decode()
    if isinstance(obj, Mapping):
        items = (f"{orjson.dumps(str(k)).decode()}:{json_template(v)}" for k, v in obj.items())
        return "{" + ",".join(items) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(json_template(v) for v in obj) + "]"
    try:
        return orjson.dumps(obj).decode()
    except TypeError as exc:
        raise TemplateError(f"json: {exc}") from None


def json_body(obj: Any, header_names: Sequence[str]) -> tuple[str | bytes, list[tuple[str, str]]]:
    """``--json`` / ``json=``: the body and the headers it adds, as curl 7.82's ``--json``.

    A str is a JSON body template, bytes are sent as they are, anything else
    (a dict or list holding placeholders) goes through :func:`json_template`.
    ``Content-Type`` and ``Accept`` become ``application/json`` unless
    ``header_names`` already has them. A ``Content-Type`` of the caller's wins
    (as in requests and httpx) but the body stays JSON: see :class:`Body`'s ``json``.
    """
    body = obj if isinstance(obj, str | bytes) else json_template(obj)
    names = {n.strip().lower() for n in header_names}
    added = [(n, "application/json") for n in ("Content-Type", "Accept") if n.lower() not in names]
    return body, added


def default_content_type(data: str | bytes) -> str:
    """The ``Content-Type`` of a body sent without one: JSON if it looks like JSON, else a form.

    A body looks like JSON when its own text starts with ``{`` or ``[``. In a
    template (a str) the brace of a placeholder is not the body's text: ``{q}``
    and ``{key}={value}`` are forms, as any body curl's ``-d`` sends without a
    type; ``{"a": {n}}``, ``[{n}]`` and the doubled ``{{"a": {n}}}`` are JSON.
    Bytes (``-d @file``) are not a template: their first character decides.
    """
    sample = data.lstrip() if isinstance(data, str) else data.decode("latin-1").lstrip()
    looks_json = sample[:1] in ("{", "[")
    if looks_json and isinstance(data, str) and JSON_PLACEHOLDER.match(sample) is not None:
        looks_json = False  # the body starts with a placeholder: its row's text, not JSON's
    return "application/json" if looks_json else "application/x-www-form-urlencoded"


class Body:
    """A request body compiled once: bytes sent as they are, or a template filled per row.

    ``media_type`` (None: set by a templated header, unknown) decides the
    encoding of the placeholders: JSON (:func:`drumfire._encode.json_cell` and
    friends), form, or as they are. ``json``: the body is a JSON body
    (``--json``, ``json=``), encoded as JSON whatever its ``Content-Type``
    (``text/plain``, ``application/x-ndjson``, a templated one), as requests
    and httpx encode ``json=`` and send the caller's ``Content-Type``.
    """

    __slots__ = ("_check", "_fill", "fixed", "template")

    def __init__(self, data: str | bytes, media_type: str | None, *, json: bool = False) -> None:
        self.template: Template | None = None
        self.fixed: bytes | None = None
        self._fill: Fill | None = None
        self._check = False  # validate the JSON of every rendered body
        if isinstance(data, bytes):
            self.fixed = data  # sent as it is (--data @file)
        else:
            self._compile(data, media_type, json)

    def _compile(self, data: str, media_type: str | None, json: bool) -> None:
        if json or (media_type is not None and is_json_type(media_type)):
            t = Template(data, json=True)
            assert t.places is not None
            self.template = t
            encoders: list[Callable[[str], str]] = []
            any_encoders: list[Encoder] = []
            for column, place in zip(t.columns, t.places, strict=True):
                if place == "string":
                    encoders.append(json_chars)
                    any_encoders.append(for_any(json_chars))
                elif place == "value":
                    encoders.append(json_cell(column))
                    any_encoders.append(json_value)
                else:
                    encoders.append(verbatim)
                    any_encoders.append(as_text)
            self._fill = Fill(t.literals, t.columns, encoders, any_encoders)
            if "raw" in t.places:
                self._check = True  # {+x} may bring anything
            else:
                # Filled with null and "", the body must be JSON; then it is JSON
                # whatever the values, as each one is a JSON value or string content.
                fills = ["null" if p == "value" else "" for p in t.places]
                dummy = "".join(
                    lit + fill for lit, fill in zip(t.literals, [*fills, ""], strict=True)
                )
                try:
                    orjson.loads(dummy)
                except orjson.JSONDecodeError as exc:
                    what = (
                        "the body"
                        if t.is_static
                        else "the body template (read with null for each value placeholder)"
                    )
                    typed = media_type is not None and is_json_type(media_type)
                    why = f"Content-Type {media_type}" if typed else "--json (json=)"
                    raise TemplateError(
                        f"{what} is sent as JSON ({why}) but cannot be valid JSON: {exc}"
                    ) from None
            return
        t = Template(data)
        self.template = t
        form = media_type == "application/x-www-form-urlencoded"
        self._fill = Fill(
            t.literals,
            t.columns,
            [verbatim if raw or not form else form_value for raw in t.raw],
        )

    def render(self, row: Mapping[str, Any], text_rows: bool = False) -> bytes:
        """The body for ``row``. Raises KeyError (missing column) or ValueError."""
        fill = self._fill
        if fill is None:
            assert self.fixed is not None
            return self.fixed
        try:
            text = fill.render(row, text_rows)
        except TypeError as exc:  # orjson: a lone surrogate, a value it cannot write
            raise ValueError(f"the body: {exc}") from None
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the body holds a lone surrogate, which UTF-8 cannot encode") from None
        if self._check:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"the body is not valid JSON after substitution: {exc}") from None
        return body

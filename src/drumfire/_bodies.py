"""Files in and out of requests: a file per row as the body, multipart forms, saved bodies.

:class:`FilePlan` wraps a :class:`~drumfire._request.RequestPlan`. Per row it
renders the file paths, checks each file (a missing or unreadable one is the
row's error, ``file: PATH: why``), and returns a request whose ``data`` is
the request head as a :class:`Streamed` (a ``bytes`` subclass) carrying what
the connection streams after it: the body's *segments* (bytes, and files read
in bounded chunks when written) and the row's :class:`SaveTarget`.

The connection writes the head as any request, then hands the rest to a
:class:`BodyPump`, which writes one chunk at a time and stops whenever the
transport's buffer is full (``pause_writing``) until it drains
(``resume_writing``): at most a chunk and the transport's high-water mark are
held per connection, whatever the file sizes. The segments are a description,
not the bytes, so a retry or a redirect writes the same body again.

A plan without file options is left as it was: nothing here runs, and the
connection's only cost is one ``type(data) is bytes`` test per request.

Why this module is long (about 670 lines): the three file options (``--data-file``,
``-F``, ``--save-body``) share one plan that renders them per row, one writer of
their bodies and one reading of their settings (API and command line alike); curl's
``-F`` syntax is read here too, beside the plan that renders its fields.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import UsageError
from ._multipart import FileSegment, Part, Segment, boundary, content_type_for, encode, length
from ._request import Prepared, RequestPlan
from ._request import redirect as _redirect
from ._savebody import RowOutcome, SaveError, Saver, SaveSpec, SaveTarget, parse_statuses
from ._template import Template

if TYPE_CHECKING:
    from ._response import Response

__all__ = [
    "CHUNK",
    "BodyPump",
    "FilePlan",
    "FormField",
    "Streamed",
    "parse_form_option",
    "redirect",
]

#: Bytes read from a file per write: with the transport's 64 KiB high-water mark,
#: a connection holds at most about twice this of a body in memory.
CHUNK = 64 * 1024
_EMPTY_BODY_END = b"Content-Length: 0\r\n\r\n"
_new_prepared = tuple.__new__


class Streamed(bytes):
    """A request head whose body (``segments``) is written after it, and the row's
    :class:`SaveTarget` (``save``) for its response's body. Either may be None."""

    segments: tuple[Segment, ...] | None
    save: SaveTarget | None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_streamed, (bytes(self), self.segments, self.save))


def _streamed(
    head: bytes, segments: tuple[Segment, ...] | None, save: SaveTarget | None
) -> Streamed:
    out = Streamed(head)
    out.segments = segments
    out.save = save
    return out


class FormField(NamedTuple):
    """One ``-F`` field: a text part (``value`` a template), a file part (``value`` the
    path template), or with ``as_text`` a file's contents as a text part (curl's
    ``<``: no filename); with its optional ``;type=`` and ``;filename=``."""

    name: str
    value: str
    is_file: bool = False
    content_type: str | None = None
    filename: str | None = None
    as_text: bool = False


_SPACE = " \t\r\n\f\v"


def _word(text: str, at: int) -> tuple[str, int, bool]:
    """A value of ``-F`` from ``at``, as curl's ``get_param_word`` reads it: up to the next
    ``;`` with the spaces around it dropped, or in double quotes (``\\"`` and ``\\\\``
    escaped inside; an unclosed quote is taken as it is). Returns the value, where it
    ends (a ``;`` or the end), and False when more than spaces follows a closing quote
    (curl warns and drops it; refused here)."""
    while at < len(text) and text[at] in _SPACE:
        at += 1
    if text.startswith('"', at):
        out: list[str] = []
        i = at + 1
        while i < len(text):
            c = text[i]
            if c == "\\" and text[i + 1 : i + 2] in ('"', "\\"):
                out.append(text[i + 1])
                i += 2
            elif c == '"':
                end = _end(text, i + 1)
                trailing = text[i + 1 : end].strip(_SPACE)
                return "".join(out), end, not trailing
            else:
                out.append(c)
                i += 1
    end = _end(text, at)
    return text[at:end].rstrip(_SPACE), end, True


def _end(text: str, at: int) -> int:
    end = text.find(";", at)
    return len(text) if end < 0 else end


def parse_form_option(spec: str, number: int = 1) -> FormField:
    """curl's ``-F`` syntax: ``name=value`` a text part, ``name=@path`` a file part,
    ``name=<path`` a file's contents as a text part (no filename); then ``;type=MEDIA``
    (its parameters too: ``;type=text/plain;charset=utf-8``) and, but after ``<``,
    ``;filename=NAME``. A value in double quotes may hold ``;``; spaces around an
    unquoted one are dropped (curl's ``tool_formparse.c``). Values are templates,
    parsed here once: a row's value is inserted later, never parsed. Where curl warns
    and skips an unknown ``;option``, it is refused (it is mostly a ``;`` meant as text).
    """
    name, eq, rest = spec.partition("=")
    name = name.strip()
    if not eq or not name:
        raise UsageError(f"-F {number}: not in the form 'name=value' or 'name=@path'")
    kind = rest[:1] if rest[:1] in ("@", "<") else ""
    allowed = "type=" if kind == "<" else "type=, filename="
    value, at, clean = _word(rest, len(kind))
    ctype: str | None = None
    filename: str | None = None
    type_at = -1  # where the type being read starts
    while clean and at < len(rest):  # rest[at] is the ';' before an option
        at += 1
        while at < len(rest) and rest[at] in _SPACE:
            at += 1
        option = rest[at : _end(rest, at)]
        key = option[: option.find("=") + 1].lower()
        if key == "filename=" and kind != "<":
            type_at = -1
            filename, at, clean = _word(rest, at + len(key))
            continue
        if key == "type=" and type_at < 0:
            type_at = at + len(key)
        elif type_at < 0 or key in ("filename=", "headers=", "encoder="):
            raise UsageError(
                f"-F {name}: unknown option {option!r} ({allowed}; a value with ';' "
                'goes in double quotes: name="a;b")'
            )
        at += len(option)  # an option after type= is one of its parameters, as in curl
        ctype = rest[type_at:at].strip(_SPACE)
    if not clean:
        raise UsageError(f"-F {name}: text after a closing quote (a value in quotes ends there)")
    if ctype == "":
        raise UsageError(f"-F {name}: ';type=' names no type")
    if kind and not value:
        raise UsageError(f"-F {name}: '{kind}' names no file")
    return FormField(name, value, bool(kind), ctype, filename, kind == "<")


def _text_type(field: FormField, filename: str | None) -> str | None:
    """A text part's Content-Type: its ``;type=``; with a ``;filename=``, the name's type
    when it has a known one (as curl); else none (text/plain, RFC 7578 §4.4)."""
    if field.content_type is not None or not filename:
        return field.content_type
    return content_type_for(filename, None)


def _file_size(path: str) -> int:
    """The size of a file to send; a :class:`RowOutcome` ``file: PATH: why`` if it cannot be."""
    try:
        st = os.stat(path)
    except OSError as exc:  # an empty cell: "file: no path: …", not "file: : No such file"
        raise RowOutcome(f"file: {path or 'no path'}: {exc.strerror or exc}") from None
    except ValueError:  # no file has such a name: the row's file error, not its template's
        raise RowOutcome(f"file: {path!r}: {_unnameable(path)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise RowOutcome(f"file: {path}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise RowOutcome(f"file: {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise RowOutcome(f"file: {path}: Permission denied")
    return st.st_size


def _unnameable(path: str) -> str:
    """Why ``path`` can name no file (``os.stat`` raised ValueError)."""
    if "\x00" in path:
        return "holds a NUL character"
    return "holds a character no file name can (a lone surrogate)"


def _render(template: Template, text_rows: bool) -> Callable[[Mapping[str, Any]], str]:
    if template.is_static:
        value = template.render({})
        return lambda row: value
    return template.render_text if text_rows else template.render


def _head_of(data: bytes) -> bytes:
    """A body-less request's head without its end (and its ``Content-Length: 0``)."""
    return data[: -len(_EMPTY_BODY_END)] if data.endswith(_EMPTY_BODY_END) else data[:-2]


class FilePlan:
    """A request plan with a file per row as the body, a multipart form, or saved bodies.

    The engine finds the hooks it calls through ``plan.files`` (None on a
    plain :class:`RequestPlan`).
    """

    def __init__(
        self,
        inner: RequestPlan,
        *,
        data_file: str | None = None,
        form: Sequence[FormField] = (),
        saver: Saver | None = None,
        save_template: str | None = None,
        content_type: bool = False,
    ) -> None:
        if data_file is not None and form:
            raise UsageError("the body is given twice: --data-file and a form (-F)")
        if form and content_type:
            raise UsageError("a form (-F) sets its own Content-Type (with its boundary): drop -H")
        self.inner = inner
        self.files = self  # the engine's hooks (see Engine.__init__)
        self.saver = saver
        self._save_template = Template(save_template) if save_template is not None else None
        self._data_file = Template(data_file) if data_file is not None else None
        self._form_templates = [
            (
                f,
                Template(f.value),
                Template(f.filename) if f.filename is not None else None,
            )
            for f in form
        ]
        self._content_type = content_type  # a -H Content-Type: it wins over the file's type
        self._boundary = boundary()
        self.columns_added = saver.columns if saver is not None else ()

    # -- RequestPlan's face ------------------------------------------------------

    @property
    def columns(self) -> set[str]:
        cols = set(self.inner.columns)
        for t in self._templates():
            cols.update(t.columns)
        return cols

    def _templates(self) -> list[Template]:
        out = [t for t in (self._data_file, self._save_template) if t is not None]
        for _f, value, filename in self._form_templates:
            out.append(value)
            if filename is not None:
                out.append(filename)
        return out

    def check(self, available: set[str] | frozenset[str]) -> None:
        self.inner.check(available)
        for t in self._templates():
            t.check(available)

    def prepare(self, row: Mapping[str, Any], text_rows: bool = False) -> Prepared:
        return self.preparer(text_rows)(row)

    def preparer(self, text_rows: bool = False) -> Callable[[Mapping[str, Any]], Prepared]:
        inner = self.inner.preparer(text_rows)
        save = self.saver
        data_file = _render(self._data_file, text_rows) if self._data_file is not None else None
        fields = [
            (
                f,
                _render(value, text_rows),
                _render(filename, text_rows) if filename is not None else None,
            )
            for f, value, filename in self._form_templates
        ]
        bound = self._boundary
        form_type = f"Content-Type: multipart/form-data; boundary={bound}\r\n".encode()
        typed = self._content_type

        def prepare(row: Mapping[str, Any]) -> Prepared:
            target = save.target(row) if save is not None else None
            origin, data, method, idempotent = inner(row)
            segments: tuple[Segment, ...] | None = None
            extra = b""
            if data_file is not None:
                path = data_file(row)
                segments = (FileSegment(path, _file_size(path)),)
                if not typed:
                    extra = f"Content-Type: {content_type_for(path)}\r\n".encode()
            elif fields:
                parts = []
                for f, value, filename in fields:
                    text = value(row)
                    if not f.is_file:
                        named = filename(row) if filename is not None else None
                        parts.append(Part(f.name, text, named, _text_type(f, named)))
                        continue
                    if f.as_text:  # curl's '<': the file's contents, no filename
                        content = FileSegment(text, _file_size(text))
                        parts.append(Part(f.name, content, None, f.content_type))
                        continue
                    shown = filename(row) if filename is not None else os.path.basename(text)
                    ctype = f.content_type or content_type_for(shown or text)
                    parts.append(Part(f.name, FileSegment(text, _file_size(text)), shown, ctype))
                segments = encode(parts, bound)
                extra = form_type
            if segments is not None:
                data = _head_of(data) + extra + b"Content-Length: %d\r\n\r\n" % length(segments)
            return _new_prepared(
                Prepared, (origin, _streamed(data, segments, target), method, idempotent)
            )

        return prepare

    # -- engine hooks ------------------------------------------------------------

    def finish(
        self,
        prepared: Prepared,
        response: Response,
        fields: dict[str, Any] | None,
        error: str,
        row_id: str | None = None,
    ) -> tuple[dict[str, Any] | None, str]:
        """The row's final answer: its saved body under the final name, and the row's
        fields and error (the file's path, size and hash; ``save: …`` if the rename failed).
        ``row_id``: the row's id, which the file carries (see ``_savebody``)."""
        if not self.columns_added:
            return fields, error
        data = prepared.data
        target = data.save if isinstance(data, Streamed) else None
        try:
            saved = target.commit(row_id) if target is not None else None
        except SaveError as exc:  # the answer stands (its status); its file is not there
            saved = None
            error = exc.reason
        if saved is None:
            added = dict.fromkeys(self.columns_added)
        else:
            added = saved
            if error == "json":  # the body went to its file, not to -e
                error = ""
        return ({**fields, **added} if fields else added), error

    def abandon(self, prepared: Prepared) -> None:
        """The row's latest answer is not its final one (a retry or a redirect follows),
        or the row ends without one: remove that answer's saved body."""
        data = prepared.data
        if isinstance(data, Streamed) and data.save is not None:
            data.save.discard()


def redirect(prepared: Prepared, status: int, location: str) -> Prepared | None:
    """:func:`drumfire._request.redirect`, keeping a streamed body and the save target.

    A 307/308 repeats the method and the body: the same segments are written
    again (files read again from disk); 301/302 after POST and 303 drop it.
    """
    nxt = _redirect(prepared, status, location)
    data = prepared.data
    if nxt is None or not isinstance(data, Streamed):
        return nxt
    new = nxt.data
    segments = data.segments
    if segments is not None and nxt.method == prepared.method:
        new = _head_of(new) + b"Content-Length: %d\r\n\r\n" % length(segments)
    else:
        segments = None
    return _new_prepared(
        Prepared, (nxt.origin, _streamed(new, segments, data.save), nxt.method, nxt.idempotent)
    )


class _Writer:
    """What a :class:`BodyPump` needs of a connection (a ``_connection.Connection``)."""

    transport: Any
    write_paused: bool
    pump: BodyPump | None

    def abort(self, reason: str, detail: str = "") -> None: ...


class BodyPump:
    """Writes a request body's segments to a connection, a chunk at a time, with flow control."""

    __slots__ = ("_file", "_index", "_left", "_path", "conn", "segments")

    def __init__(self, conn: _Writer, segments: Sequence[Segment]) -> None:
        self.conn = conn
        self.segments = segments
        self._index = 0
        self._file: Any = None
        self._left = 0
        self._path = ""

    def run(self) -> None:
        """Write until the transport asks to pause or the body is all written."""
        conn = self.conn
        try:
            while not conn.write_paused:
                chunk = self._next()
                if chunk is None:
                    self.close()
                    if conn.pump is self:
                        conn.pump = None
                    return
                conn.transport.write(chunk)
        except OSError as exc:
            self.close()
            conn.pump = None
            conn.abort(f"file: {self._path}: {exc.strerror or exc}")

    def _next(self) -> bytes | None:
        while True:
            f = self._file
            if f is not None:
                if self._left > 0:
                    chunk = f.read(min(CHUNK, self._left))
                    if not chunk:
                        raise OSError(f"shorter than its {self._size()} bytes: changed while sent")
                    self._left -= len(chunk)
                    if not self._left and os.fstat(f.fileno()).st_size > self._size():
                        # Before its last bytes are written: the server gets no whole
                        # request of a prefix of the file (a retry read the grown file's
                        # first N bytes and sent them as the file).
                        raise OSError(f"longer than its {self._size()} bytes: changed while sent")
                    return bytes(chunk)
                f.close()
                self._file = None
            if self._index >= len(self.segments):
                return None
            segment = self.segments[self._index]
            self._index += 1
            if isinstance(segment, FileSegment):
                self._path = segment.path
                self._left = segment.size
                # closed when read to its end, or by close()
                self._file = open(segment.path, "rb", buffering=0)  # noqa: SIM115
            elif segment:
                return segment

    def _size(self) -> int:
        segment = self.segments[self._index - 1]
        return segment.size if isinstance(segment, FileSegment) else len(segment)

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()


def start(conn: Any, data: Any) -> None:
    """Connection hook: after the head of ``data`` is written, its body and its saver."""
    conn.reader.saver = data.save
    if data.segments:
        if conn.unsent:  # the head waits for the owner's flush (pipelining): not the body
            conn.flush()
        pump = conn.pump = BodyPump(conn, data.segments)
        pump.run()


def answered_early(conn: Any, responses: list[Response]) -> None:
    """An answer came before the body was all written: stop writing, and do not reuse
    the connection (the server would read the rest of the body as the next request)."""
    pump = conn.pump
    if pump is not None and responses:
        pump.close()
        conn.pump = None
        for response in responses:
            response.keep_alive = False
        # Not close(): it would wait to flush the unsent body to a server that may
        # never read it. The answer is in hand; drop the rest.
        conn.transport.abort()


def closed(conn: Any) -> None:
    """Connection hook: it is gone; close the file being sent, drop a half-written body."""
    pump = conn.pump
    if pump is not None:
        pump.close()
        conn.pump = None
    conn.reader.drop_sink()


def file_settings(
    body: str | None,
    data_file: str | None,
    files: Any,
    form: Any,
    save_body: str | None,
    save_dir: str | None,
    save_status: str | None,
    save_sha256: bool,
    skip_saved: bool,
) -> dict[str, Any]:
    """The :class:`~drumfire._job.Job` fields of the file options (API and CLI alike).

    ``body``: the option that already gives the body, if any (``--data (data=)``).

    ``form``: ``{"name": "value"}``, or in order curl ``-F`` strings
    (``name=value``, ``name=@path;type=...``) or ``(name, value)`` pairs;
    ``files``: ``{"name": "{path}"}`` or ``{"name": ("{path}", "media/type")}``, or
    a list of such ``(name, value)`` pairs (a name may repeat), as requests'
    ``files=`` (after the text parts, as requests puts them). ``save_dir`` and
    ``save_status``: None when not given (``.`` and ``2xx``).
    """
    fields: list[FormField] = []
    for number, spec in enumerate(_items(form, "form"), 1):
        if isinstance(spec, str):
            fields.append(parse_form_option(spec, number))
        else:
            name, value = spec
            fields.append(FormField(str(name), str(value)))
    for name, value in _items(files, "files"):
        if isinstance(value, str | os.PathLike):
            fields.append(FormField(str(name), os.fspath(value), True))
        elif isinstance(value, tuple) and len(value) == 2:
            fields.append(FormField(str(name), os.fspath(value[0]), True, value[1]))
        else:
            raise UsageError(
                f"files={{{name!r}: ...}}: a path template, or a (path, content_type) pair"
            )
    # Each named as on the command line and in the API: make_job serves both.
    given = [
        what
        for what, on in (
            (body, body is not None),
            ("--data-file (data_file=)", data_file is not None),
            ("-F (form=, files=)", bool(fields)),
        )
        if on
    ]
    if len(given) > 1:
        raise UsageError(f"the body is given twice: {' and '.join(map(str, given))}")
    save = None
    if save_body is not None:
        statuses = parse_statuses("2xx" if save_status is None else save_status)
        save = SaveSpec(save_body, "." if save_dir is None else save_dir, statuses, save_sha256)
        save.check_directory()
    else:
        # Given without --save-body, even as the default's value, is a mistake to show.
        unused = [
            what
            for what, on in (
                ("--save-dir (save_dir=)", save_dir is not None),
                ("--save-status (save_status=)", save_status is not None),
                ("--save-sha256 (save_sha256=)", save_sha256),
            )
            if on
        ]
        if unused:
            need = "needs" if len(unused) == 1 else "need"
            raise UsageError(f"{' and '.join(unused)} {need} --save-body (save_body=)")
    return {
        "data_file": data_file,
        "form": tuple(fields),
        "save": save,
        "skip_saved": skip_saved,
    }


def _items(given: Any, option: str) -> list[Any]:
    """A dict's items, or a list's: ``-F`` strings, or ``(name, value)`` pairs (requests'
    list form, where a name may repeat)."""
    if not given:
        return []
    if isinstance(given, Mapping):
        return list(given.items())
    pair = "'name=value' strings or " if option == "form" else ""
    if not isinstance(given, str | bytes):
        items = list(given) if isinstance(given, Iterable) else None
        if items is not None and all(
            (isinstance(i, str) and option == "form") or (isinstance(i, tuple) and len(i) == 2)
            for i in items
        ):
            return items
    raise UsageError(f"{option}={given!r}: give a dict, or a list of {pair}(name, value) pairs")


def file_plan(job: Any, headers: list[Any]) -> FilePlan:
    """The request plan of a :class:`~drumfire._job.Job` that uses file options."""
    body = job.data_file is not None or bool(job.form)
    verb = job.method or ("POST" if body else None)
    inner = RequestPlan(job.url, method=verb, headers=headers, data=job.data, json=job.data_is_json)
    names = [h[0] if isinstance(h, tuple) else str(h).partition(":")[0] for h in headers]
    typed = any(n.strip().lower() == "content-type" for n in names)
    saver = None
    save_template = None
    if job.save is not None:
        save_template = job.save.template
        render = Template(save_template)
        saver = Saver(job.save, render.render)
    return FilePlan(
        inner,
        data_file=job.data_file,
        form=job.form,
        saver=saver,
        save_template=save_template,
        content_type=typed,
    )


def clean_temps(job: Any) -> int:
    """Remove the temporary files a stopped run left in the save directory (``--resume``)."""
    if job.save is None:
        return 0
    return Saver(job.save, str).clean()


def saved_rows(
    job: Any, again: Callable[[str], bool], since: int | None = None
) -> Callable[[str, Mapping[str, Any]], dict[str, Any] | None] | None:
    """``--resume``'s hook for a row the output does not hold (see :class:`~drumfire._rows.Rows`):
    the fields of its file when that is complete on disk, so it is written without a request.

    A row is sent whatever its file if ``again(id)`` (dropped to be sent again, by this
    run or a stopped one), or if its file is older than ``since`` (ns: an earlier batch's).
    None when the job saves no bodies, does not resume, or saves more than successes
    (``--save-status all``: a file under the name may be a 503's body, not an answer).
    """
    if job.save is None or not job.skip_saved or any(s // 100 != 2 for s in job.save.statuses):
        return None
    saver = Saver(job.save, Template(job.save.template).render)

    def saved(id_: str, row: Mapping[str, Any]) -> dict[str, Any] | None:
        return None if again(id_) else saver.complete(row, since, id_)

    return saved


def static_form(specs: Sequence[str]) -> tuple[bytes, str]:
    """A whole form in memory, and its Content-Type (``drumfire bench -F``: one form,
    sent many times). Values are taken as they are; a file that cannot be read is a
    :class:`UsageError` naming it."""
    parts: list[Part] = []
    for number, spec in enumerate(specs, 1):
        field = parse_form_option(spec, number)
        if not field.is_file:
            named = field.filename
            parts.append(Part(field.name, field.value, named, _text_type(field, named)))
            continue
        try:
            with open(field.value, "rb") as f:
                content = f.read()
        except OSError as exc:
            raise UsageError(f"-F {field.name}: {field.value}: {exc.strerror or exc}") from None
        if field.as_text:
            parts.append(Part(field.name, content, None, field.content_type))
            continue
        shown = field.filename if field.filename is not None else os.path.basename(field.value)
        ctype = field.content_type or content_type_for(shown or field.value)
        parts.append(Part(field.name, content, shown, ctype))
    bound = boundary()
    segments = encode(parts, bound)
    body = b"".join(s for s in segments if isinstance(s, bytes))
    return body, f"multipart/form-data; boundary={bound}"

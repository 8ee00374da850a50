"""Field extraction (drumfire._extract): the fast path must agree with jmespath."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drumfire._errors import UsageError
from drumfire._extract import Extractor, compile_expression, parse_extract_options

EXPRESSIONS = [
    "code",
    "routes[0].duration",
    "routes[-1].legs[0].steps",
    "a.b.c",
    "a[5]",
    "a[0]",
    "a[-7]",
    "a.b",
    "a.b[0]",
    "a.b.c.d",
    "routes[0]",
    "routes[-1]",
    '"a"',
    'a."b".c',
    "length(routes)",
    "routes[*].duration",
    "code == 'Ok'",
    "routes[0].legs[0].steps[1]",
]

DOCUMENTS: list[Any] = [
    {
        "code": "Ok",
        "routes": [
            {"duration": 1.5, "legs": [{"steps": [1, 2]}]},
            {"duration": 2, "legs": [{"steps": []}]},
        ],
    },
    {"code": None, "routes": []},
    {"code": "NoRoute", "routes": [{"duration": None}]},
    {"a": {"b": {"c": 0}}},
    {"a": {"b": {"c": False}}},
    {"a": {"b": {"c": []}}},
    {"a": {"b": {"c": {}}}},
    {"a": {"b": {"c": {"d": "deep"}}}},
    {"a": {"b": [1]}},
    {"a": [1, 2, 3, 4, 5, 6]},
    {"a": [1, 2]},
    {"a": {"5": 1, "0": 2}},
    {"a": "string"},
    {"routes": {"0": 1}},
    {"routes": [[1], {"duration": 3}]},
    {"routes": [{"legs": {"0": {"steps": 1}}}]},
    {"a": [{"b": 1}]},
]


def _search(expr: str, doc: Any) -> Any:
    return jmespath.search(expr, doc)


OTHER_DOCUMENTS: list[Any] = [None, 3, "s", [1, 2], [], {}, True, 1.5]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_compiled_matches_jmespath(expr: str) -> None:
    get = compile_expression(expr)
    compared = 0
    for doc in DOCUMENTS + OTHER_DOCUMENTS:
        try:
            expected = _search(expr, doc)
        except jmespath.exceptions.JMESPathError:
            continue  # function type errors: see test_extractor_type_errors_give_none
        got = get(doc)
        assert got == expected, doc
        assert type(got) is type(expected), doc
        compared += 1
    assert compared >= 5  # length() raises on most documents, the rest compare them all


def test_fast_path_is_used_for_simple_chains() -> None:
    # A simple chain compiles to a plain function, not jmespath's bound search method.
    for expr in ("code", "routes[0].duration", "a.b.c", "a[-1]", '"a b"'):
        get = compile_expression(expr)
        assert get.__name__ == "get", expr  # the direct walk
    for expr in ("length(routes)", "routes[*].duration", "code == 'Ok'"):
        assert compile_expression(expr).__name__ == "guarded", expr  # jmespath itself


KEYS = st.sampled_from(["a", "b", "c", "code", "routes", "0", "duration", "legs", ""])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
STEP = st.one_of(
    KEYS.filter(bool).map(lambda k: f'"{k}"' if k[0].isdigit() else k),
    st.integers(-4, 4).map(lambda i: f"[{i}]"),
)


@st.composite
def simple_expressions(draw: st.DrawFn) -> str:
    steps = draw(st.lists(STEP, min_size=1, max_size=5))
    first = draw(KEYS.filter(bool).map(lambda k: f'"{k}"' if k[0].isdigit() else k))
    out = first
    for step in steps:
        out += step if step.startswith("[") else "." + step
    return out


@settings(max_examples=120, deadline=None)
@given(simple_expressions(), JSON)
def test_hypothesis_fast_path_equals_jmespath(expr: str, doc: Any) -> None:
    assert compile_expression(expr)(doc) == _search(expr, doc)


@settings(max_examples=120, deadline=None)
@given(st.lists(simple_expressions(), min_size=1, max_size=4), JSON)
def test_hypothesis_extractor_equals_jmespath(exprs: list[str], doc: Any) -> None:
    # Extractor.apply walks chains in its own generated body (not through the
    # getters): each field as jmespath has it, beside one jmespath evaluates.
    fields = {f"f{i}": expr for i, expr in enumerate(exprs)}
    expected = {name: _search(expr, doc) for name, expr in fields.items()}
    try:  # a function over a value of another type: None, as Extractor has it
        length = jmespath.search("length(a)", doc)
    except jmespath.exceptions.JMESPathError:
        length = None
    fields["n"], expected["n"] = "length(a)", length
    assert Extractor(fields).apply(doc) == expected


@settings(max_examples=40, deadline=None)
@given(JSON)
def test_hypothesis_fixed_expressions(doc: Any) -> None:
    for expr in EXPRESSIONS[:13]:
        assert compile_expression(expr)(doc) == _search(expr, doc), expr


@pytest.mark.parametrize("expr", ["a[", "a..b", "[0", "routes[0", "a.b.", "foo(", "'unterminated"])
def test_malformed_expression_is_a_usage_error(expr: str) -> None:
    with pytest.raises(UsageError, match="bad --extract expression"):
        compile_expression(expr)


def test_empty_expression_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        compile_expression("")


# -- parse_extract_options ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "pairs"),
    [
        (["duration=routes[0].duration"], [("duration", "routes[0].duration")]),
        (["code"], [("code", "code")]),
        (["my_field"], [("my_field", "my_field")]),
        (["ok=code=='Ok'"], [("ok", "code=='Ok'")]),
        ([" x = a.b "], [("x", "a.b")]),
        (["a=b", "c"], [("a", "b"), ("c", "c")]),
        ([], []),
    ],
)
def test_parse_extract_options(options: list[str], pairs: list[tuple[str, str]]) -> None:
    assert parse_extract_options(options) == pairs


@pytest.mark.parametrize("option", ["", "  ", "=x", "x=", "x=  ", "a.b", "routes[0]", "a-b"])
def test_parse_extract_options_rejects(option: str) -> None:
    with pytest.raises(UsageError, match="NAME=EXPRESSION"):
        parse_extract_options([option])


# -- Extractor ---------------------------------------------------------------------------


def test_extractor_applies_every_expression() -> None:
    ex = Extractor({"code": "code", "d": "routes[0].duration", "n": "length(routes)"})
    assert ex
    assert ex.names == ("code", "d", "n")
    doc = {"code": "Ok", "routes": [{"duration": 3.5}]}
    assert ex.apply(doc) == {"code": "Ok", "d": 3.5, "n": 1}


def test_extractor_from_pairs_keeps_order() -> None:
    ex = Extractor([("z", "a"), ("y", "b")])
    assert ex.names == ("z", "y")
    assert list(ex.apply({"a": 1, "b": 2})) == ["z", "y"]


def test_empty_extractor_is_falsy() -> None:
    assert not Extractor({})
    assert Extractor({}).apply({"a": 1}) == {}


def test_extractor_duplicate_names() -> None:
    with pytest.raises(UsageError, match="given twice"):
        Extractor([("a", "x"), ("a", "y")])


def test_extractor_bad_expression() -> None:
    with pytest.raises(UsageError):
        Extractor({"a": "routes["})


@pytest.mark.parametrize(
    ("expr", "doc"),
    [
        ("length(routes)", {"code": "NoRoute", "message": "no route"}),
        ("sum(a)", {"a": ["x"]}),
        ("a > `1`", {"a": "text"}),
    ],
)
def test_extractor_type_errors_give_none(expr: str, doc: dict[str, Any]) -> None:
    assert Extractor({"n": expr}).apply(doc) == {"n": None}


def test_generated_code_takes_any_key_and_name() -> None:
    # Keys and names go into generated code as repr() literals: quotes,
    # backslashes, newlines and braces stay plain data.
    doc = {"it's": {'x"y\\z': [{"a\nb}": 7}]}, "{g0}": 1}
    expr = '"it\'s"."x\\"y\\\\z"[0]."a\\nb}"'
    assert jmespath.search(expr, doc) == 7
    assert compile_expression(expr)(doc) == 7
    names = {"it's": expr, 'x"}\\': '"{g0}"', "{document}": "missing"}
    assert Extractor(names).apply(doc) == {"it's": 7, 'x"}\\': 1, "{document}": None}

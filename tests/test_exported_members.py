"""The public surface of the ``drumfire`` package."""

from __future__ import annotations

import drumfire


def test_all_is_sorted() -> None:
    assert drumfire.__all__ == sorted(drumfire.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(drumfire.__all__)) == len(drumfire.__all__)


def test_every_exported_name_exists() -> None:
    missing = [name for name in drumfire.__all__ if not hasattr(drumfire, name)]
    assert missing == []


def test_no_private_names_exported() -> None:
    private = [
        name
        for name in drumfire.__all__
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    ]
    assert private == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from drumfire import *", namespace)
    namespace.pop("__builtins__", None)
    assert sorted(namespace) == sorted(drumfire.__all__)


def test_exceptions_share_one_base() -> None:
    for name in drumfire.__all__:
        obj = getattr(drumfire, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, drumfire.DrumfireError), name


def test_version() -> None:
    assert isinstance(drumfire.__version__, str)
    assert drumfire.__version__.count(".") >= 1

"""Unit tests of the sql/ loader: the real files load, malformed ones fail loudly with file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minitwit.paths import SQL_DIR
from minitwit.queries import QueryFileError, load_queries, parse_queries


def test_every_project_query_loads_with_its_comment() -> None:
    queries = load_queries(SQL_DIR)
    assert {"public_timeline", "user_timeline", "home_timeline", "record_latest", "create_user"} <= set(queries)
    for query in queries.values():
        outside_literals = re.sub(r"'[^']*'", "''", query.positional_sql)  # to_char's 'HH24:MI:SS' is no parameter
        assert query.doc and query.sql and ":" not in outside_literals.replace("::", "")


def test_parameters_become_positional_in_first_use_order() -> None:
    [query] = parse_queries(
        "-- name: q\n-- Does q.\nSELECT :b, :a, :b, '::text' FROM t WHERE c = CAST(:a AS int);\n", "f.sql"
    )
    assert query.parameters == ("b", "a")
    assert query.positional_sql == "SELECT $1, $2, $1, '::text' FROM t WHERE c = CAST($2 AS int)"
    assert query.arguments({"a": 1, "b": 2}) == [2, 1]
    with pytest.raises(TypeError):
        query.arguments({"a": 1})


@pytest.mark.parametrize(
    "text, message",
    [
        ("SELECT 1;\n-- name: q\n-- doc\nSELECT 2;", "f.sql:1: SQL before the first"),
        ("-- name: q\nSELECT 1;", "f.sql:1: query q has no comment"),
        ("-- name: q\n-- doc\n", "f.sql:1: query q has no SQL"),
        ("-- name: Bad-Name\n-- doc\nSELECT 1;", "f.sql:1: invalid query name"),
        ("-- name:\n-- doc\nSELECT 1;", "f.sql:1: invalid query name"),
        ("-- name: q\n-- doc\nSELECT 1; SELECT 2;", "more than one statement"),
        ("-- name: q\n-- doc\nSELECT :x::int;", "CAST(:param AS type)"),
    ],
)
def test_malformed_files_are_refused_with_their_location(text: str, message: str) -> None:
    with pytest.raises(QueryFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_queries(text, "f.sql")


def test_duplicate_names_across_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: q\n-- first\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("\n-- name: q\n-- second\nSELECT 2;\n")
    with pytest.raises(QueryFileError, match=r"b.sql:2: duplicate query name q \(first defined at a.sql:1\)"):
        load_queries(tmp_path)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match=r"no \.sql files"):
        load_queries(tmp_path)

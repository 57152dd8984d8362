"""Loads the named queries of ``sql/*.sql``, once, and refuses malformed files.

A file holds queries of this form::

    -- name: public_timeline
    -- One or more comment lines that say what the query is for.
    SELECT ... WHERE x = :param;

Parameters are ``:name``. Anything wrong (SQL before the first name, a duplicate or invalid
name, a query without its comment or without SQL, ``:param::type`` which hides a parameter)
raises ``QueryFileError`` naming ``file:line``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S*)\s*$")
VALID_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A parameter is ':word' not preceded by ':' (so '::cast' is no parameter) nor by a word char.
PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
CAST_ON_PARAMETER = re.compile(r"(?<![:\w]):[A-Za-z_]\w*::")


class QueryFileError(ValueError):
    """A sql/ file cannot be loaded; the message starts with file:line."""


@dataclass(frozen=True)
class Query:
    """One named query: its text with ``:name`` parameters, and the same in asyncpg's ``$n`` form."""

    name: str
    doc: str
    sql: str
    source: str  # file:line, for error messages and DBAs
    positional_sql: str
    parameters: tuple[str, ...]  # parameter names in $1, $2, ... order

    def arguments(self, values: dict[str, object]) -> list[object]:
        """The values in ``$n`` order; a missing or unexpected one is a programming error."""
        if set(values) != set(self.parameters):
            raise TypeError(
                f"query {self.name} takes {sorted(self.parameters)}, got {sorted(values)}"
            )
        return [values[name] for name in self.parameters]


def _to_positional(sql: str) -> tuple[str, tuple[str, ...]]:
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return PARAMETER.sub(number, sql), tuple(order)


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--")).strip()


@dataclass
class _Draft:
    """A query being read: its header line, comment lines and SQL lines so far."""

    name: str
    line: int
    doc: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    def finish(self, filename: str) -> Query:
        where = f"{filename}:{self.line}"
        doc = " ".join(self.doc).strip()
        sql = _strip_comments("\n".join(self.body)).rstrip(";").strip()
        if not doc:
            raise QueryFileError(f"{where}: query {self.name} has no comment saying what it does")
        if not sql:
            raise QueryFileError(f"{where}: query {self.name} has no SQL")
        if ";" in sql:
            raise QueryFileError(f"{where}: query {self.name} holds more than one statement")
        if CAST_ON_PARAMETER.search(sql):
            raise QueryFileError(f"{where}: write CAST(:param AS type), not :param::type")
        positional, parameters = _to_positional(sql)
        return Query(self.name, doc, sql, where, positional, parameters)


def parse_queries(text: str, filename: str) -> list[Query]:
    """Every query in one file's text."""
    queries: list[Query] = []
    current: _Draft | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = NAME_LINE.match(stripped)
        if header:
            if current is not None:
                queries.append(current.finish(filename))
            name = header.group("name")
            if not VALID_NAME.match(name):
                raise QueryFileError(f"{filename}:{number}: invalid query name {name!r}")
            current = _Draft(name, number)
        elif current is None:
            if stripped and not stripped.startswith("--"):
                raise QueryFileError(f"{filename}:{number}: SQL before the first '-- name:' line")
        elif not current.body and stripped.startswith("--"):
            current.doc.append(stripped[2:].strip())
        else:
            current.body.append(line)
    if current is not None:
        queries.append(current.finish(filename))
    return queries


def load_queries(directory: Path) -> dict[str, Query]:
    """All named queries of ``directory/*.sql``; names are unique across files."""
    found: dict[str, Query] = {}
    files = sorted(directory.glob("*.sql"))
    if not files:
        raise QueryFileError(f"{directory}: no .sql files")
    for path in files:
        for query in parse_queries(path.read_text(encoding="utf-8"), path.name):
            if query.name in found:
                raise QueryFileError(
                    f"{query.source}: duplicate query name {query.name} "
                    f"(first defined at {found[query.name].source})"
                )
            found[query.name] = query
    return found

"""Metadata filters as data: {"license": "mit", "params": ("<", 5e6), "tags": "digits"}.

A field takes a value (equality), a list of values (any of), an (operator, value) pair, or a list of such pairs,
all of which must hold: {"params": [(">", 100), ("<", 1e6)]} is a range. (JSON has no tuples: [[">", 100]] reads
the same.) A model whose field is unknown (no parameter count, say) is dropped by every condition
on that field, != included, as SQL's NULL is.

Every value is bound as a query parameter; only field names and operators from the fixed tables
below ever reach the SQL text.
"""

from __future__ import annotations

import math
import re
from typing import Any

from zoo2vec.errors import FilterError

# field -> (column, type); "list" columns match when they contain the value
FIELDS = {
    "name": ("name", "str"),
    "modality": ("modality", "str"),
    "license": ("license", "str"),
    "params": ("params", "num"),
    "source": ("source", "str"),
    "tags": ("tags", "list"),
    "labels": ("label_names", "list"),
    "indexed_at": ("indexed_at", "date"),  # when the model was (last) indexed
}
OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "in": "IN", "contains": "contains"}
_ORDERED = {"<", "<=", ">", ">="}


def _as_date(field: str, value: Any):
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise FilterError(f"filter {field!r} needs a date like 2026-11-27 or 2026-11-27T09:30, got {value!r}") from None


def _as_number(field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise FilterError(f"filter {field!r} needs a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FilterError(f"filter {field!r} needs a number, got {_shown(value)}") from None
    if not math.isfinite(number):  # nan compares false with everything: params<nan would mean nothing, or all
        raise FilterError(f"filter {field!r} needs a finite number, got {_shown(value)}")
    return number


def _as_text(field: str, value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise FilterError(f"filter {field!r} needs a text value, got {_shown(value)}")
    text = str(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # e.g. bytes that were not UTF-8, as Python decodes a command line
            raise FilterError(f"filter {field!r} value {_shown(value)} is not valid UTF-8 text") from None
    return text.lower() if field in ("license", "modality") else text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


_COERCE = {"date": _as_date, "num": _as_number, "str": _as_text, "list": _as_text}


def _operator_and_value(field: str, kind: str, cond: Any) -> tuple[str, Any]:
    """A condition's operator and value: (op, value), a list (any of), or a plain value (equality); checked."""
    if isinstance(cond, tuple) and len(cond) == 2 and isinstance(cond[0], str):
        op, value = cond
    elif isinstance(cond, (list, set, frozenset)):
        op, value = "in", list(cond)
    else:
        op, value = "=", cond
    if op not in OPERATORS:
        raise FilterError(f"unknown operator {op!r} for {field!r}. Available: {', '.join(OPERATORS)}")
    if op in _ORDERED and kind not in ("num", "date"):
        raise FilterError(f"operator {op!r} needs a numeric or date field; {field!r} is not (those: params, indexed_at)")
    if op == "contains" and kind == "date":
        raise FilterError(f"{field!r} is a date: compare it with =, !=, <, <=, > or >=")
    if op == "contains" and kind == "num":
        raise FilterError(f"{field!r} is a number: compare it with =, !=, <, <=, > or >= (contains is for text)")
    return op, value


def _any_of(field: str, column: str, kind: str, value: Any) -> tuple[str, list]:
    values = [_COERCE[kind](field, v) for v in (value if isinstance(value, (list, tuple, set)) else [value])]
    if not values:
        raise FilterError(f"filter {field!r} in [] matches nothing: give at least one value")
    if kind == "list":
        return "(" + " OR ".join(f"list_contains({column}, ?)" for _ in values) + ")", values
    return f"{column} IN ({', '.join('?' for _ in values)})", values


def _compare(field: str, column: str, kind: str, op: str, value: Any) -> str:
    """The clause for one comparison; the value (already coerced) is bound as its one parameter."""
    if kind == "list":
        if op not in ("=", "contains", "!="):
            raise FilterError(f"{field!r} holds a list: use '=' (contains) or '!=' (does not contain)")
        return ("NOT " if op == "!=" else "") + f"list_contains({column}, ?)"
    if op == "contains":
        return f"strpos(lower({column}), lower(?)) > 0"
    if kind == "date" and op in ("=", "!=") and value.time() == value.min.time():  # a day: the whole day
        return f"CAST({column} AS DATE) {OPERATORS[op]} CAST(? AS DATE)"
    return f"{column} {OPERATORS[op]} ?"


_FORM = ("filters (where=) must be a dict of field -> value, [values] (any of), (operator, value) or "
         "[(operator, value), ...] (all of), like {'license': 'mit', 'params': [('>', 100), ('<', 1e6)]}")


def _is_condition(cond: Any) -> bool:
    """(operator, value), or [operator, value] as JSON brings it: a 2-sequence whose first item is an operator."""
    return (isinstance(cond, (tuple, list)) and len(cond) == 2 and isinstance(cond[0], str)
            and cond[0] in OPERATORS)


def _conditions(field: str, cond: Any) -> list[Any]:
    """The conditions one field's entry holds: several for a list of (operator, value) pairs, else the entry."""
    if isinstance(cond, list) and any(isinstance(c, (tuple, list)) for c in cond):
        if not all(_is_condition(c) for c in cond):
            bad = next(c for c in cond if not _is_condition(c))
            raise FilterError(f"filter {field!r}: {_shown(bad)} is no (operator, value) pair; a list of conditions "
                              f"holds only those, e.g. [('>', 100), ('<', 1e6)]. Operators: {', '.join(OPERATORS)}")
        return [tuple(c) for c in cond]
    return [cond]


def _empty(where: Any) -> bool:
    return where is None or isinstance(where, (dict, list, tuple, str)) and len(where) == 0


def checked(where: Any) -> dict[str, Any]:
    """`where` as a dict, after checking every field, operator and value (the FilterError names what is wrong)."""
    if _empty(where):
        return {}
    to_sql(where)
    return dict(where)


def to_sql(where: dict[str, Any] | None) -> tuple[str, list]:
    """A WHERE clause (without the keyword; 'TRUE' when empty) and its parameters."""
    if _empty(where):
        return "TRUE", []
    if not isinstance(where, dict):
        raise FilterError(_FORM + f", not {_shown(where) if isinstance(where, str) else type(where).__name__}" + (
            "; a command-line filter string reads with zoo2vec.index.filters.parse(['license=mit'])"
            if isinstance(where, (str, list, tuple)) else ""))
    clauses, params = [], []
    for field, cond in where.items():
        if not isinstance(field, str) or field not in FIELDS:
            raise FilterError(f"unknown filter field {_shown(field)}. Available: {', '.join(FIELDS)}")
        column, kind = FIELDS[field]
        for one in _conditions(field, cond):
            op, value = _operator_and_value(field, kind, one)
            if op == "in":
                clause, values = _any_of(field, column, kind, value)
            else:
                value = _COERCE[kind](field, value)
                clause, values = _compare(field, column, kind, op, value), [value]
            clauses.append(clause)
            params.extend(values)
    return " AND ".join(clauses), params


_EXPR = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|!=|=|<|>|~)\s*(.+?)\s*$")


def parse(expressions: list[str]) -> dict[str, Any]:
    """CLI form: ["license=mit", "params<5e6", "tags=digits", "source~recipe", "indexed_at>=2026-11-01"] into a dict.
    A field given more than once must meet every condition: ["params>100", "params<1e6"] is a range."""
    where: dict[str, Any] = {}
    for expr in expressions:
        if not isinstance(expr, str):
            raise FilterError(f"a command-line filter is a string like 'license=mit', got {_shown(expr)}")
        m = _EXPR.match(expr)
        if not m:
            raise FilterError(f"cannot read filter {expr!r}: write FIELD OP VALUE, e.g. license=mit or params<5e6")
        field, op, value = m.groups()
        if op == "=" and "," in value:
            cond: Any = [v.strip() for v in value.split(",")]
        else:
            cond = ("contains" if op == "~" else op, value)
        if field not in where:
            where[field] = cond
            continue
        first = where[field]
        conditions = first if isinstance(first, list) and first and isinstance(first[0], tuple) else [
            ("in", first) if isinstance(first, list) else first]
        where[field] = [*conditions, ("in", cond) if isinstance(cond, list) else cond]
    return where

"""The one text rule at the edge: text a request sends refuses control characters.

Every string of a request, in a JSON body (``Input``, src/schemas.py), a query or a path
parameter (``text_rule``, an app-wide dependency), refuses NUL, the other C0 controls and DEL,
and unpaired surrogates (not text: neither database can store them), with 422 VALIDATION_ERROR
naming where. PostgreSQL cannot store NUL at all, and SQLite would keep what PostgreSQL later
refuses, so the rule is the same on both.

A field or parameter says otherwise by naming its kind in its annotation:

- ``Annotated[str, MULTI_LINE]``: multi-line text (a description, a review comment) also keeps
  tab, line feed and carriage return;
- ``Annotated[str, OWN_RULE]``: a value its own validator checks with a code of its own (a file
  name: INVALID_FILENAME; a checklist cell: INVALID_SAMPLE) or that is never stored as text (a
  password); only unpaired surrogates are refused here.

Everything else is one line of text. Sample-sheet cells are checked by the sheet validator, row
by row; headers never carry a NUL (HTTP servers refuse it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any, get_args

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError


class TextKind(Enum):
    """What a string may hold; the default is ``LINE``."""

    LINE = "line"
    MULTI_LINE = "multi-line"
    OWN_RULE = "own-rule"


MULTI_LINE = TextKind.MULTI_LINE
OWN_RULE = TextKind.OWN_RULE

_SURROGATES = "\ud800-\udfff"
_REFUSED = {
    TextKind.LINE: re.compile(f"[\\x00-\\x1f\\x7f{_SURROGATES}]"),
    TextKind.MULTI_LINE: re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f{_SURROGATES}]"),
    TextKind.OWN_RULE: re.compile(f"[{_SURROGATES}]"),
}

ERROR_TYPE = "control_character"


def refused_character(value: str, kind: TextKind = TextKind.LINE) -> str | None:
    """Why ``value`` breaks the rule for ``kind``, or None when it does not."""
    match = _REFUSED[kind].search(value)
    if match is None:
        return None
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:
        return f"the text contains an unpaired surrogate (U+{code:04X})"
    allowed = " (tab and line breaks only in multi-line text)" if kind is TextKind.LINE else ""
    return f"the text contains a control character (U+{code:04X}){allowed}"


def check(value: str, kind: TextKind = TextKind.LINE) -> str:
    """``value`` if it keeps the rule, else the pydantic error naming the character."""
    problem = refused_character(value, kind)
    if problem is not None:
        raise PydanticCustomError(ERROR_TYPE, problem)
    return value


def check_nested(value: Any, kind: TextKind) -> None:
    """Every string in ``value``, in lists, tuples and dicts (keys too), keeps the rule."""
    if isinstance(value, str):
        check(value, kind)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_nested(key, TextKind.LINE)
            check_nested(item, kind)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_nested(item, kind)


def _mentions(annotation: Any, kind: TextKind) -> bool:
    return annotation is kind or any(_mentions(arg, kind) for arg in get_args(annotation))


def kind_of(field: FieldInfo) -> TextKind:
    """The kind a field's annotation names (in its metadata, or inside ``X | None``)."""
    for kind in (TextKind.OWN_RULE, TextKind.MULTI_LINE):
        if kind in field.metadata or _mentions(field.annotation, kind):
            return kind
    return TextKind.LINE


# Query and path parameters -------------------------------------------------------------------


def _declared(dependant: Dependant) -> Iterator[tuple[str, str, FieldInfo]]:
    for param in dependant.path_params:
        yield "path", param.alias, param.field_info
    for param in dependant.query_params:
        yield "query", param.alias, param.field_info
    for dependency in dependant.dependencies:
        yield from _declared(dependency)


# Where a route keeps its parameters' kinds, worked out on its first request.
_KINDS_ATTRIBUTE = "_text_kinds"


def _parameter_kinds(route: Any) -> dict[tuple[str, str], TextKind]:
    """The kind of each declared parameter of ``route`` that is not one line of text."""
    if route is None:
        return {}
    kinds: dict[tuple[str, str], TextKind] | None = getattr(route, _KINDS_ATTRIBUTE, None)
    if kinds is None:
        dependant = getattr(route, "dependant", None)
        declared = _declared(dependant) if dependant is not None else iter(())
        kinds = {
            (where, name): kind
            for where, name, field in declared
            if (kind := kind_of(field)) is not TextKind.LINE
        }
        setattr(route, _KINDS_ATTRIBUTE, kinds)
    return kinds


def _parameters(request: Request) -> Iterator[tuple[str, str, str]]:
    for name, value in request.path_params.items():
        yield "path", name, str(value)
    for name, value in request.query_params.multi_items():
        yield "query", name, name
        yield "query", name, value


async def text_rule(request: Request) -> None:
    """App-wide dependency: every query and path parameter keeps the rule (422 naming each)."""
    kinds = _parameter_kinds(request.scope.get("route"))
    errors = []
    for where, name, value in _parameters(request):
        problem = refused_character(value, kinds.get((where, name), TextKind.LINE))
        if problem is not None:
            errors.append({"type": ERROR_TYPE, "loc": (where, name), "msg": problem})
    if errors:
        raise RequestValidationError(errors)

"""Cells of a sample sheet: the one conversion of a value (read from json or xlsx, or stored in a
sample) to the text of a cell, the formula neutralisation that makes written sheets safe to open
and read back unchanged, and the spreadsheet's names for columns."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

# Cells starting with these are written with a leading quote, and only a quote followed by one
# of them is removed on reading.
_ESCAPED_STARTS = ("=", "+", "-", "@", "'")


def cell_text(value: object) -> str:
    """A value as the text of a cell: None is empty, booleans are ``true``/``false`` (as JSON
    writes them), whole floats lose their ``.0``, a date-time at midnight is its date, other
    dates and times are ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def unneutralise(value: str) -> str:
    """Undo the writers' formula neutralisation: drop one ``'`` before ``= + - @ '``."""
    if len(value) > 1 and value[0] == "'" and value[1] in _ESCAPED_STARTS:
        return value[1:]
    return value


def neutralise(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet could run as a formula (and to one starting with
    ``'``, so that :func:`unneutralise` restores it exactly)."""
    if value and value[0] in _ESCAPED_STARTS:
        return "'" + value
    return value


def column_letter(number: int) -> str:
    """A spreadsheet's name for the 1-based column ``number``: A, B, ..., Z, AA, AB, ..."""
    letters = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def clip(value: str | None, limit: int = 200) -> str | None:
    """A value shortened for an issue's ``value``."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 3] + "..."

"""The one value-to-cell-text conversion: what json and xlsx cells read as, and what the writers
and the export put in a cell."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pytest

from src.sampleFileUpload.sheets.cells import cell_text
from src.sampleFileUpload.sheets.parse import parse_sheet
from src.sampleFileUpload.sheets.write import write_sheet
from tests.sampleFileUpload.sheets.test_parse import xlsx_bytes


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (3.0, "3"),
        (2.5, "2.5"),
        (-0.125, "-0.125"),
        ("  kept as is ", "  kept as is "),
        (date(2024, 2, 29), "2024-02-29"),
        (datetime(2024, 2, 29), "2024-02-29"),
        (datetime(2024, 2, 29, 13, 5, 7), "2024-02-29 13:05:07"),
        (time(9, 30), "09:30:00"),
        (timedelta(hours=1, minutes=2), "1:02:00"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_booleans_read_the_same_from_json_and_xlsx() -> None:
    from_json = parse_sheet(
        json.dumps(
            [{"sample_id": "S1", "flag": True}, {"sample_id": "S2", "flag": False}]
        ).encode(),
        filename="s.json",
    )
    from_xlsx = parse_sheet(
        xlsx_bytes([["sample_id", "flag"], ["S1", True], ["S2", False]]), filename="s.xlsx"
    )
    assert [row["flag"] for _, row in from_json.rows] == ["true", "false"]
    assert [row["flag"] for _, row in from_xlsx.rows] == ["true", "false"]


def test_written_booleans_and_dates_read_back_as_written() -> None:
    sample = {"sample_id": "S1", "attributes": {"flag": True, "seen": date(2024, 1, 2)}}
    for sheet_format in ("csv", "xlsx", "json"):
        parsed = parse_sheet(
            write_sheet([sample], format=sheet_format), format=sheet_format, filename=None
        )
        ((_, row),) = parsed.rows
        assert (row["flag"], row["seen"]) == ("true", "2024-01-02"), sheet_format

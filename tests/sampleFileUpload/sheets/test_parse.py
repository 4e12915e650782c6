"""Sample sheets: every format, every bad input in tests/data/sheets, the report, the writers and
a round-trip property (write -> parse -> validate gives back the same samples)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from src.sampleFileUpload.sheets import validate as validate_module
from src.sampleFileUpload.sheets.cells import column_letter, neutralise, unneutralise
from src.sampleFileUpload.sheets.constants import SheetErrorCode
from src.sampleFileUpload.sheets.parse import ParsedSheet, parse_sheet
from src.sampleFileUpload.sheets.validate import (
    SheetChecker,
    SheetReport,
    flag_taken_sample_ids,
    validate_sheet,
)
from src.sampleFileUpload.sheets.write import template, write_report, write_sheet
from src.study.checklist import SEX_VALUES, header_key, match_header, validate_sample
from src.study.constants import ChecklistCode

CORPUS = Path(__file__).parents[2] / "data" / "sheets"
TODAY = date(2024, 6, 15)


def load(name: str, **options: Any) -> ParsedSheet:
    return parse_sheet((CORPUS / name).read_bytes(), filename=name, **options)


def report_of(data: bytes | str, filename: str = "s.csv", **options: Any) -> SheetReport:
    raw = data.encode() if isinstance(data, str) else data
    return validate_sheet(parse_sheet(raw, filename=filename, **options), today=TODAY)


def error_codes(report: SheetReport | ParsedSheet) -> list[str]:
    return [issue.code for issue in report.errors]


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class TestCorpusValid:
    @pytest.mark.parametrize(
        ("name", "sheet_format"),
        [
            ("valid.csv", "csv"),
            ("valid_semicolon.csv", "csv"),
            ("valid.tsv", "tsv"),
            ("valid_tab.txt", "txt"),
            ("valid_pipe.txt", "txt"),
            ("valid_spaces.txt", "txt"),
            ("valid.json", "json"),
            ("valid_wrapped.json", "json"),
            ("valid.xlsx", "xlsx"),
            ("utf8_bom.csv", "csv"),
            ("utf16.csv", "csv"),
            ("blank_rows.csv", "csv"),
        ],
    )
    def test_reads_two_valid_samples(self, name: str, sheet_format: str) -> None:
        parsed = load(name)
        report = validate_sheet(parsed, today=TODAY)
        assert parsed.format == sheet_format
        assert report.valid, report.errors
        first, second = report.samples
        assert first.values["sample_id"] == "S1"
        assert first.values["organism"] == "Mus musculus"
        assert first.values["date_sample_prep"] == "2023-05-01"
        assert first.values["biological_repeat"] == 1
        assert second.values["organism"] == "Mus musculus"
        assert second.values["sex"] == "male"
        assert second.values["date_sample_prep"] == "2023-05"
        assert second.values["biological_repeat"] == 2
        normalised = [w for w in report.warnings if w.code == ChecklistCode.NORMALISED]
        assert {w.value for w in normalised} == {"mouse", "M"}
        assert all(w.row == second.row for w in normalised)

    def test_row_numbers_as_the_spreadsheet_shows_them(self) -> None:
        assert [number for number, _ in load("blank_rows.csv").rows] == [3, 5]
        assert [number for number, _ in load("valid_pipe.txt").rows] == [3, 4]
        assert [number for number, _ in load("valid.json").rows] == [2, 3]

    def test_xlsx_dates_and_whole_floats(self) -> None:
        parsed = load("valid.xlsx")
        (row2, first), (row4, second) = parsed.rows
        assert (row2, row4) == (2, 4)  # the blank row 3 is skipped, numbering kept
        assert first["Date_Sample_Prep"] == "2023-05-01"  # a date cell, not a serial number
        assert first["Biological_Repeat"] == "1"
        assert first["Weight"] == "2"  # 2.0 written without .0
        assert second["Biological_Repeat"] == "2"
        assert second["Weight"] == "2.5"

    def test_unknown_column_is_an_attribute_warned_once(self) -> None:
        report = validate_sheet(load("valid.xlsx"), today=TODAY)
        assert [s.attributes for s in report.samples] == [{"Weight": "2"}, {"Weight": "2.5"}]
        unknown = [w for w in report.warnings if w.code == ChecklistCode.UNKNOWN_COLUMN]
        assert [(w.row, w.column) for w in unknown] == [(1, "Weight")]

    def test_json_attributes_object_is_silent(self) -> None:
        report = validate_sheet(load("valid.json"), today=TODAY)
        assert report.samples[1].attributes == {"Weight": "2.5"}
        assert not [w for w in report.warnings if w.code == ChecklistCode.UNKNOWN_COLUMN]

    def test_utf16_and_bom_decoded(self) -> None:
        for name, encoding in [("utf16.csv", "utf-16"), ("utf8_bom.csv", "utf-8-sig")]:
            parsed = load(name)
            assert parsed.encoding == encoding
            assert parsed.headers[0] == "Sample_ID"
            assert parsed.rows[0][1]["Sample"] == "Lèber 1"
            assert parsed.warnings == []

    def test_cp1252_read_with_a_warning(self) -> None:
        parsed = load("cp1252.csv")
        assert parsed.rows[0][1]["Sample"] == "Lèber 1"
        assert [w.code for w in parsed.warnings] == [SheetErrorCode.ENCODING_FALLBACK]
        assert validate_sheet(parsed, today=TODAY).valid

    def test_extra_sheets_warned(self) -> None:
        parsed = load("two_sheets.xlsx")
        assert SheetErrorCode.EXTRA_SHEETS in [w.code for w in parsed.warnings]
        assert len(parsed.rows) == 2


class TestCorpusInvalid:
    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("empty.csv", SheetErrorCode.EMPTY_FILE),
            ("header_only.csv", SheetErrorCode.NO_DATA_ROWS),
            ("binary.csv", SheetErrorCode.BINARY_FILE),
            ("nul_bytes.csv", SheetErrorCode.BINARY_FILE),
            ("zip_bomb.xlsx", SheetErrorCode.ZIP_BOMB),
            ("not_zip.xlsx", SheetErrorCode.INVALID_XLSX),
            ("invalid.json", SheetErrorCode.INVALID_JSON),
            ("not_a_list.json", SheetErrorCode.JSON_NOT_A_LIST),
            ("unknown.dat", SheetErrorCode.UNKNOWN_FORMAT),
        ],
    )
    def test_whole_file_refused(self, name: str, code: SheetErrorCode) -> None:
        parsed = load(name)
        assert error_codes(parsed) == [code]
        assert parsed.rows == []
        report = validate_sheet(parsed, today=TODAY)
        assert not report.valid
        assert error_codes(report) == [code]

    def test_invalid_json_says_where(self) -> None:
        assert "line 1, column" in load("invalid.json").errors[0].message

    def test_duplicate_headers_after_normalisation(self) -> None:
        report = validate_sheet(load("duplicate_headers.csv"), today=TODAY)
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (1, "sample id", SheetErrorCode.DUPLICATE_HEADER)
        ]
        assert [s.values["sample_id"] for s in report.samples] == ["S1", "S2"]

    def test_ragged_rows_give_their_row_numbers(self) -> None:
        parsed = load("ragged.csv")
        assert [(e.row, e.code) for e in parsed.errors] == [
            (3, SheetErrorCode.RAGGED_ROW),
            (4, SheetErrorCode.RAGGED_ROW),
        ]
        assert [number for number, _ in parsed.rows] == [2]

    def test_formula_cell_is_an_error_per_cell(self) -> None:
        report = validate_sheet(load("formula.xlsx"), today=TODAY)
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (2, "Biological_Repeat", SheetErrorCode.FORMULA_CELL)
        ]
        assert report.errors[0].value == "=1+1"

    def test_nested_json_value(self) -> None:
        report = validate_sheet(load("nested.json"), today=TODAY)
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (2, "Tissue", SheetErrorCode.NESTED_VALUE)
        ]

    def test_json_item_not_an_object(self) -> None:
        report = report_of('[{"Sample_ID": "S1", "Organism": "human"}, 3]', "s.json")
        assert [(e.row, e.code) for e in report.errors] == [(3, SheetErrorCode.JSON_ROW_NOT_OBJECT)]

    def test_real_zip_bomb_by_ratio(self) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("xl/workbook.xml", "<workbook/>")
            archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (8 * 1024 * 1024))
        assert len(buffer.getvalue()) < 64 * 1024
        assert error_codes(parse_sheet(buffer.getvalue(), filename="s.xlsx")) == [
            SheetErrorCode.ZIP_BOMB
        ]

    def test_zip_that_is_not_a_workbook(self) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("word/document.xml", "<w/>")
        parsed = parse_sheet(buffer.getvalue(), filename="s.xlsx")
        assert error_codes(parsed) == [SheetErrorCode.INVALID_XLSX]

    def test_malformed_csv(self) -> None:
        parsed = parse_sheet(b'Sample_ID,Organism\nS1,"mouse\n', filename="s.csv")
        assert error_codes(parsed) == [SheetErrorCode.MALFORMED_CSV]

    def test_undecodable_utf16(self) -> None:
        parsed = parse_sheet(b"\xff\xfeS\x00\x00\xd8", filename="s.csv")
        assert error_codes(parsed) == [SheetErrorCode.UNDECODABLE_TEXT]

    def test_old_xls_refused(self) -> None:
        parsed = parse_sheet(b"\xd0\xcf\x11\xe0" + b"\0" * 100, filename="s.csv")
        assert error_codes(parsed) == [SheetErrorCode.BINARY_FILE]
        assert ".xls" in parsed.errors[0].message


class TestFormatDetection:
    def test_sniffed_without_filename(self) -> None:
        assert parse_sheet(b'[{"a": "1"}]', filename=None).format == "json"
        assert parse_sheet(b"a\tb\n1\t2\n", filename=None).format == "tsv"
        assert parse_sheet(b"a;b\n1;2\n", filename=None).format == "csv"
        assert parse_sheet(xlsx_bytes([["a"], ["1"]]), filename=None).format == "xlsx"

    def test_format_parameter_overrides(self) -> None:
        parsed = parse_sheet(b"Sample_ID\tOrganism\nS1\thuman\n", filename="s.txt", format="tsv")
        assert parsed.format == "tsv"
        assert parsed.rows == [(2, {"Sample_ID": "S1", "Organism": "human"})]

    def test_unknown_format_parameter(self) -> None:
        parsed = parse_sheet(b"a\n1\n", filename="s.csv", format="ods")
        assert error_codes(parsed) == [SheetErrorCode.UNKNOWN_FORMAT]

    def test_workbook_named_csv_is_read_with_a_warning(self) -> None:
        parsed = parse_sheet(xlsx_bytes([["Sample_ID"], ["S1"]]), filename="s.csv")
        assert parsed.format == "xlsx"
        assert [w.code for w in parsed.warnings] == [SheetErrorCode.FORMAT_MISMATCH]
        assert parsed.rows == [(2, {"Sample_ID": "S1"})]


class TestLimits:
    def test_file_over_max_bytes(self) -> None:
        parsed = parse_sheet(b"Sample_ID\nS1\n", filename="s.csv", max_bytes=5)
        assert parsed.too_large
        assert error_codes(parsed) == [SheetErrorCode.FILE_TOO_LARGE]
        assert validate_sheet(parsed).too_large

    def test_too_many_rows(self) -> None:
        data = "Sample_ID,Organism\n" + "".join(f"S{i},human\n" for i in range(6))
        parsed = parse_sheet(data.encode(), filename="s.csv", max_rows=5)
        assert error_codes(parsed) == [SheetErrorCode.TOO_MANY_ROWS]
        assert parsed.errors[0].row == 7

    def test_too_many_columns(self) -> None:
        data = ",".join(f"c{i}" for i in range(6)) + "\n" + ",".join("x" * 6) + "\n"
        parsed = parse_sheet(data.encode(), filename="s.csv", max_columns=5)
        assert error_codes(parsed) == [SheetErrorCode.TOO_MANY_COLUMNS]

    def test_cell_too_long_reported_once(self) -> None:
        data = f"Sample_ID,Organism,Tissue\nS1,human,{'x' * 20}\n"
        report = report_of(data, max_cell_chars=10)
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (2, "Tissue", SheetErrorCode.CELL_TOO_LONG)
        ]

    def test_checklist_limit_applies_too(self) -> None:
        report = report_of(
            f"Sample_ID,Organism,Tissue\nS1,human,{'x' * 1025}\n", max_cell_chars=5000
        )
        assert error_codes(report) == [ChecklistCode.TOO_LONG]

    def test_issues_capped_but_counted(self) -> None:
        data = "Sample_ID,Organism,Sex\n" + "".join(f"S{i},human,bad\n" for i in range(30))
        report = validate_sheet(parse_sheet(data.encode(), filename="s.csv"), max_issues=10)
        assert len(report.errors) == 10
        assert report.error_count == 30
        assert not report.valid
        body = report.as_dict()
        assert body["warnings"][-1]["code"] == SheetErrorCode.ISSUES_TRUNCATED


class TestValidateSheet:
    def test_row_errors_name_the_users_header(self) -> None:
        report = report_of("sample id;SPECIES;gender\nS 1;mouse;woman\n")
        assert sorted((e.row, e.column, e.code) for e in report.errors) == [
            (2, "gender", ChecklistCode.INVALID_SEX),
            (2, "sample id", ChecklistCode.INVALID_SAMPLE_ID),
        ]
        issue = report.as_dict()["errors"][0]
        assert set(issue) == {"row", "column", "code", "message", "value"}

    def test_missing_required_column_reported_once(self) -> None:
        report = report_of("Sample_ID,Tissue\nS1,liver\nS2,liver\n")
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (1, "Organism", SheetErrorCode.MISSING_COLUMN)
        ]

    def test_empty_required_cell(self) -> None:
        report = report_of("Sample_ID,Organism\nS1,\n")
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (2, "Organism", ChecklistCode.REQUIRED)
        ]

    def test_duplicate_sample_id_ignoring_case(self) -> None:
        report = report_of(
            "Sample_ID,Organism,Tissue\nabc,human,liver\nx,human,lung\nABC,human,k\n"
        )
        (error,) = report.errors
        assert (error.row, error.column, error.code) == (4, "Sample_ID", "DUPLICATE_SAMPLE_ID")
        assert "row 2" in error.message
        assert [s.valid for s in report.samples] == [True, True, False]

    def test_possible_duplicate_sample_warned(self) -> None:
        report = report_of(
            "Sample_ID,Sample,Description,Organism,Tissue\n"
            "a,A,first,human,liver\nb,B,second,human,liver\nc,C,third,human,lung\n"
        )
        duplicates = [w for w in report.warnings if w.code == "POSSIBLE_DUPLICATE_SAMPLE"]
        assert [(w.row, w.value) for w in duplicates] == [(3, "b")]
        assert "row 2" in duplicates[0].message
        assert report.valid

    def test_two_aliases_of_one_field(self) -> None:
        report = report_of("Sample_ID,Organism,Species\nS1,human,mouse\n")
        assert [(e.column, e.code) for e in report.errors] == [
            ("Species", SheetErrorCode.DUPLICATE_HEADER)
        ]
        assert report.samples[0].values["organism"] == "Homo sapiens"

    def test_empty_header_with_values(self) -> None:
        parsed = parse_sheet(b"Sample_ID,,Organism\nS1,x,human\n", filename="s.csv")
        assert [(e.row, e.column, e.code) for e in parsed.errors] == [
            (2, "B", SheetErrorCode.EMPTY_HEADER)
        ]

    def test_empty_trailing_columns_ignored(self) -> None:
        parsed = parse_sheet(b"Sample_ID,Organism,,\nS1,human,,\n", filename="s.csv")
        assert parsed.errors == []
        assert parsed.rows == [(2, {"Sample_ID": "S1", "Organism": "human"})]

    def test_flag_taken_sample_ids(self) -> None:
        report = report_of("SampleID,Organism\nS1,human\nS2,human\n")
        flag_taken_sample_ids(report, ["s2", "other"])
        assert [(e.row, e.column, e.code) for e in report.errors] == [
            (3, "SampleID", SheetErrorCode.SAMPLE_ID_TAKEN)
        ]
        assert not report.valid
        assert [s.valid for s in report.samples] == [True, False]

    def test_samples_are_normalised_rows(self) -> None:
        report = report_of("Sample_ID,Organism,Sex,Biological_Repeat,Batch\nS1,mouse,F,2,b7\n")
        assert report.as_dict()["samples"] == [
            {
                "sample": "S1",
                "sample_id": "S1",
                "sample_group": None,
                "sample_project": None,
                "description": None,
                "organism": "Mus musculus",
                "tissue": None,
                "sex": "female",
                "cell_line": None,
                "mouse_model": None,
                "biomaterial_provider": None,
                "date_sample_prep": None,
                "biological_repeat": 2,
                "attributes": {"Batch": "b7"},
            }
        ]

    def test_same_codes_as_a_json_sample(self) -> None:
        raw = {"Sample_ID": "S1", "Organism": "human", "Date_Sample_Prep": "03/04/2022"}
        json_codes = [i.code for i in validate_sample(raw, today=TODAY).errors]
        sheet = report_of(",".join(raw) + "\n" + ",".join(raw.values()) + "\n")
        assert error_codes(sheet) == json_codes == [ChecklistCode.AMBIGUOUS_DATE]


class TestTxt:
    def test_single_spaces_when_no_runs(self) -> None:
        parsed = parse_sheet(b"Sample_ID Organism\nS1 human\n", filename="s.txt")
        assert parsed.rows == [(2, {"Sample_ID": "S1", "Organism": "human"})]

    def test_runs_of_spaces_keep_single_spaces_in_values(self) -> None:
        parsed = parse_sheet(b"Sample_ID   Organism\nS1   Mus musculus\n", filename="s.txt")
        assert parsed.rows == [(2, {"Sample_ID": "S1", "Organism": "Mus musculus"})]


class TestNeutralisation:
    @pytest.mark.parametrize("value", ["=1+1", "+41", "-x", "@SUM(A1)", "'quoted", "''", "'"])
    def test_escape_round_trips(self, value: str) -> None:
        assert neutralise(value).startswith("'")
        assert unneutralise(neutralise(value)) == value

    def test_plain_values_untouched(self) -> None:
        assert neutralise("abc") == "abc"
        assert unneutralise("'abc") == "'abc"  # a user's own leading quote is kept

    @pytest.mark.parametrize("sheet_format", ["csv", "tsv", "xlsx"])
    def test_formulas_neutralised_on_writing(self, sheet_format: str) -> None:
        sample: dict[str, object] = {
            "sample_id": "S1",
            "organism": "human",
            "tissue": "=HYPERLINK(1)",
        }
        sample["attributes"] = {"@cmd": "-2+3", "note": "'kept"}
        data = write_sheet([sample], format=sheet_format)
        if sheet_format == "xlsx":
            sheet = load_workbook(io.BytesIO(data)).active
            cells = [c for row in sheet.iter_rows() for c in row]
            assert all(c.data_type != "f" for c in cells)
            values = [c.value for c in cells]
        else:
            text = data.decode("utf-8-sig")
            delimiter = "," if sheet_format == "csv" else "\t"
            values = [v for row in csv.reader(io.StringIO(text), delimiter=delimiter) for v in row]
        assert "'=HYPERLINK(1)" in values
        assert "'@cmd" in values
        assert "'-2+3" in values
        assert "''kept" in values
        report = validate_sheet(parse_sheet(data, filename=f"x.{sheet_format}"), today=TODAY)
        assert report.valid
        assert report.samples[0].values["tissue"] == "=HYPERLINK(1)"
        assert report.samples[0].attributes == {"@cmd": "-2+3", "note": "'kept"}


class TestWriters:
    @pytest.mark.parametrize("sheet_format", ["csv", "tsv", "xlsx", "json"])
    def test_template_is_one_valid_example(self, sheet_format: str) -> None:
        parsed = parse_sheet(template(sheet_format), filename=f"template.{sheet_format}")
        report = validate_sheet(parsed)
        assert report.valid
        assert report.warnings == []
        assert len(report.samples) == 1
        if sheet_format != "json":
            assert parsed.headers[:2] == ["Sample", "Sample_ID"]

    def test_unknown_write_format(self) -> None:
        with pytest.raises(ValueError, match="cannot write"):
            write_sheet([], format="txt")

    def test_json_output_is_api_shaped(self) -> None:
        data = write_sheet(
            [
                {
                    "sample_id": "S1",
                    "organism": "human",
                    "biological_repeat": 3,
                    "attributes": {"a": "b"},
                }
            ],
            format="json",
        )
        assert json.loads(data) == [
            {
                "sample_id": "S1",
                "organism": "human",
                "biological_repeat": 3,
                "attributes": {"a": "b"},
            }
        ]

    def test_csv_has_bom_and_checklist_headers_first(self) -> None:
        data = write_sheet([{"sample_id": "S1", "attributes": {"Batch": "1"}}], format="csv")
        assert data.startswith(b"\xef\xbb\xbf")
        header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert header[:2] == ["Sample", "Sample_ID"]
        assert header[-1] == "Batch"


class TestReport:
    SHEET = b"Sample_ID,Organism,Sex\nS1,human,F\n\nS 2,human,male\nS3,human\n"

    def test_csv_report_adds_errors_per_row(self) -> None:
        parsed = parse_sheet(self.SHEET, filename="s.csv")
        report = validate_sheet(parsed, today=TODAY)
        data = write_report(parsed, report, format="csv")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert rows[0] == ["Sample_ID", "Organism", "Sex", "errors", "warnings"]
        assert rows[1][:4] == ["S1", "human", "F", ""]
        assert "NORMALISED" in rows[1][4]
        assert rows[2] == ["", "", "", "", ""]  # row 3 was blank: numbering kept
        assert rows[3][0] == "S 2"
        assert rows[3][3].startswith("INVALID_SAMPLE_ID")
        assert rows[4][:2] == ["S3", "human"]
        assert rows[4][3].startswith("RAGGED_ROW")

    def test_xlsx_report(self) -> None:
        parsed = parse_sheet(self.SHEET, filename="s.csv")
        report = validate_sheet(parsed, today=TODAY)
        sheet = load_workbook(io.BytesIO(write_report(parsed, report, format="xlsx"))).active
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
        assert rows[0] == ["Sample_ID", "Organism", "Sex", "errors", "warnings"]
        assert rows[3][3].startswith("INVALID_SAMPLE_ID")

    def test_errors_column_name_does_not_clash(self) -> None:
        parsed = parse_sheet(b"Sample_ID,Organism,Errors\nS1,human,none\n", filename="s.csv")
        data = write_report(parsed, validate_sheet(parsed), format="csv")
        header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert header == ["Sample_ID", "Organism", "Errors", "mosaic_errors", "warnings"]

    def test_file_level_errors_still_give_a_report(self) -> None:
        parsed = load("invalid.json")
        data = write_report(parsed, validate_sheet(parsed), format="csv")
        assert b"INVALID_JSON" in data


# -- round trip -------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("\n\t=+-@'\" ,;|"),
    min_size=1,
    max_size=20,
)
_ID = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
_DATE = st.dates(min_value=date(1900, 1, 1), max_value=TODAY).flatmap(
    lambda d: st.sampled_from([d.isoformat(), d.isoformat()[:7], d.isoformat()[:4]])
)
_ATTRIBUTE_NAME = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zs")) | st.just(" "),
    min_size=1,
    max_size=12,
).filter(lambda name: name == name.strip() and match_header(name) is None and header_key(name))


@st.composite
def _sample(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "sample_id": draw(_ID),
        "organism": draw(st.sampled_from(["Mus musculus", "Homo sapiens"]) | _TEXT),
    }
    for name in ("sample", "sample_group", "sample_project", "description", "tissue"):
        raw[name] = draw(st.none() | _TEXT)
    for name in ("cell_line", "mouse_model", "biomaterial_provider"):
        raw[name] = draw(st.none() | _TEXT)
    raw["sex"] = draw(st.none() | st.sampled_from(SEX_VALUES))
    raw["date_sample_prep"] = draw(st.none() | _DATE)
    raw["biological_repeat"] = draw(st.none() | st.integers(1, 10**9))
    return raw


@st.composite
def _valid_samples(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(_ATTRIBUTE_NAME, max_size=3, unique_by=header_key))
    samples = []
    for raw in draw(
        st.lists(_sample(), min_size=1, max_size=5, unique_by=lambda s: s["sample_id"].casefold())
    ):
        raw["attributes"] = {name: draw(_TEXT) for name in names if draw(st.booleans())}
        check = validate_sample(raw, today=TODAY)
        if check.valid:
            samples.append({**check.values, "attributes": check.attributes})
    return samples


@pytest.mark.parametrize("sheet_format", ["csv", "tsv", "xlsx", "json"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples=_valid_samples())
def test_round_trip(sheet_format: str, samples: list[dict[str, Any]]) -> None:
    if not samples:
        return
    data = write_sheet(samples, format=sheet_format)
    parsed = parse_sheet(data, filename=f"samples.{sheet_format}")
    report = validate_sheet(parsed, today=TODAY)
    assert parsed.errors == []
    assert [s.as_dict() for s in report.samples] == samples
    if sheet_format in ("csv", "tsv"):  # and what was read writes back byte for byte
        assert write_sheet([s.as_dict() for s in report.samples], format=sheet_format) == data


@pytest.mark.parametrize(
    ("number", "letters"),
    [(1, "A"), (26, "Z"), (27, "AA"), (52, "AZ"), (53, "BA"), (702, "ZZ"), (703, "AAA")],
)
def test_column_letters_are_the_spreadsheet_names(number: int, letters: str) -> None:
    assert column_letter(number) == letters


_TWIN_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["a", "A", "b", "c", "", "bad id", "d"]),
        st.sampled_from(["human", "mouse", ""]),
        st.sampled_from(["liver", "lung"]),
        st.sampled_from(["", "x", "y"]),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(_TWIN_ROWS, st.integers(1, 4))
def test_repeats_are_found_row_by_row_in_any_chunking(
    rows: list[tuple[str, str, str, str]], chunk: int
) -> None:
    """Repeated sample_ids and twin samples, found a chunk of rows at a time, are those of
    the rule read row by row: the first row of a sample_id (ignoring case) or of a sample
    counts, a row whose sample_id repeats takes no further part, nor does a row without a
    valid sample_id."""
    text = "Sample_ID,Organism,Tissue,Batch\n" + "".join(f"{','.join(r)}\n" for r in rows)
    parsed = parse_sheet(text.encode(), filename="s.csv")
    if not parsed.rows:
        return
    expected: list[tuple[int, str, str]] = []
    first_id: dict[str, int] = {}
    first_sample: dict[tuple[str, str, str], int] = {}
    for number, row in parsed.rows:
        sample_id = row["Sample_ID"]
        if not sample_id or " " in sample_id:
            continue
        earlier = first_id.setdefault(sample_id.casefold(), number)
        if earlier != number:
            expected.append((number, "DUPLICATE_SAMPLE_ID", f"row {earlier} "))
            continue
        organism = "Mus musculus" if row["Organism"] == "mouse" else row["Organism"]
        twin = first_sample.setdefault((organism, row["Tissue"], row["Batch"]), number)
        if twin != number:
            expected.append((number, "POSSIBLE_DUPLICATE_SAMPLE", f"row {twin} "))
    codes = {"DUPLICATE_SAMPLE_ID", "POSSIBLE_DUPLICATE_SAMPLE"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validate_module, "_CHUNK_ROWS", chunk)
        report = validate_sheet(parsed, today=TODAY)
    found = [
        (issue.row, issue.code, issue.message)
        for issue in sorted([*report.errors, *report.warnings], key=lambda i: i.row or 0)
        if issue.code in codes
    ]
    assert [(row, code) for row, code, _ in found] == [(row, code) for row, code, _ in expected]
    assert all(
        where in message for (_, _, message), (_, _, where) in zip(found, expected, strict=True)
    )


# Errors of every kind a row can have (a bad value, an id repeated from another chunk, an id the
# study has), warnings (a normalised value, a twin sample), spread over the chunks.
_CHUNKED_SHEET = (
    "Sample_ID,Organism,Sex,Biological_Repeat,Batch\n"
    "S1,mouse,F,1,b1\n"
    "S2,human,x,2,b2\n"
    "T1,human,female,3,b3\n"
    "S4,human,female,oops,b4\n"
    "s1,human,female,5,b5\n"
    "S6,mouse,F,1,b1\n"
    "t2,human,male,7,b7\n"
    "S8,human,male,8,b8\n"
    "bad id,human,male,9,b9\n"
)


class TestChunkedCheck:
    @pytest.mark.parametrize("chunk", [1, 2, 3, 4, 100])
    @pytest.mark.parametrize("max_issues", [2, 100])
    def test_a_chunk_at_a_time_gives_the_whole_sheet_s_report(
        self, chunk: int, max_issues: int
    ) -> None:
        """The report of a check a chunk at a time, taken sample_ids and all, is the one the
        whole sheet checked in one go and then flagged gives: the same errors and warnings in
        the same order, the same kept first max_issues, the same samples."""
        parsed = parse_sheet(_CHUNKED_SHEET.encode(), filename="s.csv")
        taken = ["t1", "T2", "elsewhere"]
        whole = validate_sheet(parsed, today=TODAY, max_issues=max_issues)
        flag_taken_sample_ids(whole, taken)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validate_module, "_CHUNK_ROWS", chunk)
            checker = SheetChecker(parsed, today=TODAY, max_issues=max_issues, taken=taken)
            chunks = []
            while not checker.done:
                chunks.append(checker.check_next())
            assert checker.check_next() == []
        assert [len(samples) for samples in chunks[:-1]] == [chunk] * (len(chunks) - 1)
        assert [s.row for samples in chunks for s in samples] == list(range(2, 11))
        assert checker.finish().as_dict() == whole.as_dict()
        assert [s.valid for s in checker.report.samples] == [s.valid for s in whole.samples]
        if max_issues > 2:  # every kind is there
            assert {e.code for e in whole.errors} == {
                ChecklistCode.INVALID_SEX,
                ChecklistCode.INVALID_INTEGER,
                SheetErrorCode.DUPLICATE_SAMPLE_ID,
                ChecklistCode.INVALID_SAMPLE_ID,
                SheetErrorCode.SAMPLE_ID_TAKEN,
            }

    def test_valid_turns_false_at_the_first_chunk_with_an_error(self) -> None:
        parsed = parse_sheet(_CHUNKED_SHEET.encode(), filename="s.csv")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validate_module, "_CHUNK_ROWS", 2)
            checker = SheetChecker(parsed, taken=["T1"])
            checker.check_next()  # rows 2-3: S1 and S2 (an unknown sex)
            assert not checker.valid
        parsed = parse_sheet(b"Sample_ID,Organism\nA,human\nB,human\nT1,human\n", filename="s.csv")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validate_module, "_CHUNK_ROWS", 2)
            checker = SheetChecker(parsed, taken=["t1"])
            valid = []
            for _ in range(2):  # then T1, taken: the error itself is added by finish()
                checker.check_next()
                valid.append(checker.valid)
            assert valid == [True, False]
            assert checker.report.errors == []
        (error,) = checker.finish().errors
        assert (error.row, error.code) == (4, SheetErrorCode.SAMPLE_ID_TAKEN)

    def test_finish_before_every_row_is_checked_is_refused(self) -> None:
        parsed = parse_sheet(b"Sample_ID,Organism\nA,human\nB,human\n", filename="s.csv")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validate_module, "_CHUNK_ROWS", 1)
            checker = SheetChecker(parsed)
            checker.check_next()
            with pytest.raises(RuntimeError):
                checker.finish()

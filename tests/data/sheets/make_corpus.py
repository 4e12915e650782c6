"""Regenerate the sample-sheet test corpus: ``.venv/bin/python tests/data/sheets/make_corpus.py``.

Each file is tiny and covers one format or one bad input; tests/sampleFileUpload/sheets/test_parse.py
says what each must produce.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).parent

HEADER = [
    "Sample_ID",
    "Sample",
    "Organism",
    "Sex",
    "Tissue",
    "Date_Sample_Prep",
    "Biological_Repeat",
]
ROWS = [
    ["S1", "Liver 1", "Mus musculus", "female", "liver", "2023-05-01", "1"],
    ["S2", "Liver 2", "mouse", "M", "liver", "2023-05", "2"],
]


def delimited(rows: list[list[str]], sep: str) -> str:
    return "".join(sep.join(row) + "\r\n" for row in rows)


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)


def xlsx(build) -> bytes:  # type: ignore[no-untyped-def]
    workbook = Workbook()
    build(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def valid_xlsx(workbook: Workbook) -> None:
    sheet = workbook.active
    sheet.title = "samples"
    sheet.append([*HEADER, "Weight"])
    sheet.append(["S1", "Liver 1", "Mus musculus", "female", "liver", datetime(2023, 5, 1), 1, 2.0])
    sheet.append([])  # a blank row: skipped, numbering kept
    sheet.append(["S2", "Liver 2", "mouse", "M", "liver", "2023-05", 2.0, 2.5])


def formula_xlsx(workbook: Workbook) -> None:
    sheet = workbook.active
    sheet.append(HEADER)
    sheet.append(["S1", "Liver 1", "Mus musculus", "female", "liver", "2023-05-01", "=1+1"])


def two_sheets_xlsx(workbook: Workbook) -> None:
    valid_xlsx(workbook)
    workbook.create_sheet("notes").append(["ignored"])


def zip_bomb() -> bytes:
    """A tiny workbook-shaped zip whose sheet declares ~4 GB uncompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    data = bytearray(buffer.getvalue())
    fake = 4_000_000_000
    name = b"xl/worksheets/sheet1.xml"
    central = data.find(b"PK\x01\x02" + bytes(0), 0)
    while central != -1:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_length] == name:
            struct.pack_into("<I", data, central + 24, fake)
        central = data.find(b"PK\x01\x02", central + 4)
    local = data.find(b"PK\x03\x04" + bytes(0))
    while local != -1:
        name_length = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30 : local + 30 + name_length] == name:
            struct.pack_into("<I", data, local + 22, fake)
        local = data.find(b"PK\x03\x04", local + 4)
    return bytes(data)


def main() -> None:
    text = delimited([HEADER, *ROWS], ",")
    write("valid.csv", text.encode())
    write("valid_semicolon.csv", delimited([HEADER, *ROWS], ";").encode())
    write("valid.tsv", delimited([HEADER, *ROWS], "\t").encode())
    write("valid_tab.txt", delimited([HEADER, *ROWS], "\t").encode())
    write(
        "valid_pipe.txt",
        (
            "| "
            + " | ".join(HEADER)
            + " |\n|"
            + "---|" * len(HEADER)
            + "\n"
            + "".join("| " + " | ".join(r) + " |\n" for r in ROWS)
        ).encode(),
    )
    write(
        "valid_spaces.txt",
        "".join(
            "  ".join(cell.ljust(18) for cell in row).rstrip() + "\n" for row in [HEADER, *ROWS]
        ).encode(),
    )
    objects: list[dict[str, object]] = [dict(zip(HEADER, row, strict=True)) for row in ROWS]
    objects[0]["Biological_Repeat"] = 1  # a JSON number
    objects[1]["attributes"] = {"Weight": 2.5}
    write("valid.json", json.dumps(objects, indent=1).encode())
    write("valid_wrapped.json", json.dumps({"samples": objects}).encode())
    write("utf8_bom.csv", "\ufeff".encode() + text.replace("Liver 1", "Lèber 1").encode())
    write("utf16.csv", text.replace("Liver 1", "Lèber 1").encode("utf-16"))
    write("cp1252.csv", text.replace("Liver 1", "Lèber 1").encode("cp1252"))
    write("blank_rows.csv", delimited([HEADER, [""] * 7, ROWS[0], [], ROWS[1]], ",").encode())
    write("empty.csv", b"")
    write("header_only.csv", delimited([HEADER], ",").encode())
    write(
        "duplicate_headers.csv",
        delimited([[*HEADER, "sample id"], [*ROWS[0], "X"], [*ROWS[1], "Y"]], ",").encode(),
    )
    write(
        "ragged.csv", delimited([HEADER, ROWS[0], ROWS[1][:4], [*ROWS[1], "extra"]], ",").encode()
    )
    write("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")
    write("nul_bytes.csv", b"Sample_ID,Organism\r\nS1\x00\x00,mouse\r\n")
    write("not_zip.xlsx", text.encode())
    write("zip_bomb.xlsx", zip_bomb())
    write("invalid.json", b'[{"Sample_ID": "S1", "Organism": }]')
    write("not_a_list.json", b'{"Sample_ID": "S1", "Organism": "mouse"}')
    write(
        "nested.json",
        json.dumps(
            [{"Sample_ID": "S1", "Organism": "mouse", "Tissue": {"name": "liver"}}]
        ).encode(),
    )
    write("unknown.dat", text.encode())
    write("valid.xlsx", xlsx(valid_xlsx))
    write("formula.xlsx", xlsx(formula_xlsx))
    write("two_sheets.xlsx", xlsx(two_sheets_xlsx))


if __name__ == "__main__":
    main()

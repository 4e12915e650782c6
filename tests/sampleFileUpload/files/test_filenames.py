"""File names on every upload path: PUT (URL path), multipart (Content-Disposition, as browsers,
RFC 7578 and RFC 5987 clients write it) and tus (Upload-Metadata). A name one path accepts, all
accept, kept the same; a name one refuses, all refuse with the same code; none is a 500."""

from __future__ import annotations

import base64
import random
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.sampleFileUpload.files.multipart import parse_disposition, part_filename
from src.study.models import SampleFile, Study, Upload
from tests.sampleFileUpload.fastq_samples import GOOD
from tests.study.factories import create_study

FILES = "/api/v1/studies/{study}/samples/S1/files"
UPLOADS = "/api/v1/uploads"
BOUNDARY = "mosaicBOUNDARY42"


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner, samples=1)


Send = Callable[[httpx.AsyncClient, dict[str, str], Study, str], Awaitable[httpx.Response]]


def _multipart(disposition: bytes, data: bytes = GOOD) -> bytes:
    return (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; '
        + disposition
        + b"\r\nContent-Type: application/octet-stream\r\n\r\n"
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def _post_multipart(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, disposition: bytes
) -> httpx.Response:
    return await client.post(
        FILES.format(study=study.accession),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        content=_multipart(disposition),
    )


async def send_put(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, name: str
) -> httpx.Response:
    url = FILES.format(study=study.accession) + "/" + quote(name, safe="")
    return await client.put(url, headers=headers, content=GOOD)


async def send_browser_form(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, name: str
) -> httpx.Response:
    """As browsers do (WHATWG): raw UTF-8, with only ", CR and LF percent-encoded."""
    escaped = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return await _post_multipart(client, headers, study, f'filename="{escaped}"'.encode())


async def send_percent_form(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, name: str
) -> httpx.Response:
    """RFC 7578 section 4.2: the name percent-encoded, ASCII only."""
    encoded = quote(name, safe=" !#$&'()*+,-.:;<=>?@[]^_`{|}~")
    return await _post_multipart(client, headers, study, f'filename="{encoded}"'.encode())


async def send_rfc5987_form(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, name: str
) -> httpx.Response:
    """filename*=UTF-8''... beside an ASCII fallback, which it overrides."""
    disposition = f"filename=\"fallback.fq\"; filename*=UTF-8''{quote(name, safe='')}"
    return await _post_multipart(client, headers, study, disposition.encode())


async def send_tus(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, name: str
) -> httpx.Response:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()

    metadata = f"study {b64(study.accession)},sample_id {b64('S1')},filename {b64(name)}"
    return await client.post(
        UPLOADS,
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(GOOD)),
            "Upload-Metadata": metadata,
        },
    )


PATHS: dict[str, Send] = {
    "put": send_put,
    "multipart-browser": send_browser_form,
    "multipart-percent": send_percent_form,
    "multipart-rfc5987": send_rfc5987_form,
    "tus": send_tus,
}

ACCEPTED = [
    "样本_R1.fastq.gz",
    "サンプル_R2.fq.gz",
    "🧬_reads.fastq",
    "👩\u200d🔬_scientist.fastq",  # an emoji sequence joined by ZWJ
    "Cafe\u0301_R1.fq",  # combining accent (NFD, as macOS writes it): kept as NFC
    'a "quoted" name.fastq',
    "semi;colon=value.fastq",
    "comma,and'apostrophe.fq",
    "100% done.fastq",
    "x" * 249 + ".fastq",
]
# name -> (status, code)
REFUSED = {
    "back\\slash.fastq": (422, "INVALID_FILENAME"),
    "trailing-backslash.fastq\\": (422, "INVALID_FILENAME"),
    "a\x00b.fastq": (422, "INVALID_FILENAME"),
    "line\nbreak.fastq": (422, "INVALID_FILENAME"),
    "rtl\u202eqtsaf.exe.fastq": (422, "INVALID_FILENAME"),  # a bidirectional override
    "../etc/x.fastq": (422, "INVALID_FILENAME"),
    ".hidden.fastq": (422, "INVALID_FILENAME"),
    " leading-space.fastq": (422, "INVALID_FILENAME"),
    "x" * 250 + "🧬.fastq": (422, "INVALID_FILENAME"),
    "样本.txt": (415, "UNSUPPORTED_FILE_TYPE"),
}


async def kept_names(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(SampleFile.filename)))


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("name", ACCEPTED)
async def test_every_path_accepts_the_same_names(
    client: httpx.AsyncClient,
    session: AsyncSession,
    headers: dict[str, str],
    study: Study,
    path: str,
    name: str,
) -> None:
    response = await PATHS[path](client, headers, study, name)
    assert response.status_code == 201, response.text
    expected = unicodedata.normalize("NFC", name)
    assert await kept_names(session) == [expected]
    if path != "tus":
        assert response.json()["filename"] == expected


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_every_path_refuses_the_same_names_alike(
    client: httpx.AsyncClient,
    session: AsyncSession,
    headers: dict[str, str],
    study: Study,
    path: str,
    name: str,
) -> None:
    response = await PATHS[path](client, headers, study, name)
    assert (response.status_code, response.json()["code"]) == REFUSED[name], response.text
    assert await kept_names(session) == []
    assert await session.scalar(select(func.count(Upload.id))) == 0


def random_names(count: int, seed: int = 13) -> list[str]:
    """Names mixing the characters that trip parsers: scripts, emoji and joiners, combining
    marks, quotes, separators, controls, bidirectional and other invisible characters."""
    printable = "aZ09_-. 样本サンプル한국어🧬👩\u200d🔬\ufe0fe\u0301\u0308\"';,=\u00a0\ufffd"
    hostile = printable + "\\/\x00\x01\t\r\n\x7f\u202e\u200b\ufeff\u2028"
    rng = random.Random(seed)
    suffixes = [".fastq", ".fq.gz", ".FASTQ.GZ", ".txt", ""]
    names = []
    for number in range(count):
        pool = printable if number % 2 else hostile
        stem = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
        names.append(stem + rng.choice(suffixes))
    return [name for name in names if name.strip(" ") not in (".", "..")]


@pytest.mark.parametrize("name", random_names(40))
async def test_all_paths_agree_on_any_name_and_none_is_a_500(
    client: httpx.AsyncClient,
    session: AsyncSession,
    headers: dict[str, str],
    study: Study,
    name: str,
) -> None:
    outcomes = {}
    for path, send in PATHS.items():
        response = await send(client, headers, study, name)
        assert response.status_code < 500, (path, response.text)
        code = response.json()["code"] if response.status_code != 201 else ""
        outcomes[path] = (response.status_code, code)
        await session.execute(delete(Upload))
        await session.execute(delete(SampleFile))
    assert len(set(outcomes.values())) == 1, outcomes


@pytest.mark.parametrize(
    "disposition",
    [
        b"filename*=UTF-8''%E6%A0.fastq",  # truncated UTF-8
        b"filename*=UTF-8''%zz.fastq",  # not an escape
        b"filename*=UTF-8''100%.fastq",
        b"filename*=KOI8-R''x.fastq",  # a charset RFC 8187 does not require
        b"filename*=x.fastq",  # no charset
        b"filename*=UTF-8'x.fastq",
        b"filename*=UTF-8''",
        "filename*=UTF-8''样本.fastq".encode(),  # raw bytes where escapes belong
        b"filename*=UTF-8''%ED%A0%80.fastq",  # an encoded surrogate
    ],
)
async def test_malformed_rfc5987_names_are_422(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, disposition: bytes
) -> None:
    response = await _post_multipart(client, headers, study, disposition)
    assert (response.status_code, response.json()["code"]) == (422, "INVALID_FILENAME")


@pytest.mark.parametrize(
    ("disposition", "code"),
    [
        (b'filename="unterminated.fastq', "MALFORMED_MULTIPART"),
        (b'filename="a.fq"; filename="b.fq"', "MALFORMED_MULTIPART"),
        (b"filename", "MALFORMED_MULTIPART"),
        (b"filename=", "INVALID_FILENAME"),
        (b'filename=""', "INVALID_FILENAME"),
        (b"\xff\xfe.fastq", "MALFORMED_MULTIPART"),
        (b'filename="\xe6\xa0\xb7\xff.fastq"', "INVALID_FILENAME"),  # not UTF-8
        (b'filename="%E6%A0%B7\xff.fastq"', "INVALID_FILENAME"),
    ],
)
async def test_broken_dispositions_are_422(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, disposition: bytes, code: str
) -> None:
    response = await _post_multipart(client, headers, study, disposition)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


class TestParseDisposition:
    def test_quoted_values_keep_semicolons_and_escaped_quotes(self) -> None:
        kind, parameters = parse_disposition('form-data; name="file"; filename="a\\"b;c.fq"')
        assert (kind, parameters) == ("form-data", {"name": "file", "filename": 'a"b;c.fq'})

    def test_tokens_and_case_insensitive_names(self) -> None:
        kind, parameters = parse_disposition("Form-Data; NAME=file; FileName=a.fq")
        assert (kind, parameters) == ("form-data", {"name": "file", "filename": "a.fq"})

    def test_extended_name_wins_over_the_plain_one(self) -> None:
        _, parameters = parse_disposition(
            "form-data; name=file; filename=\"plain.fq\"; filename*=utf-8'en'%F0%9F%A7%AC.fq"
        )
        assert part_filename(parameters) == "🧬.fq"

    def test_latin1_extended_name(self) -> None:
        _, parameters = parse_disposition("form-data; name=file; filename*=ISO-8859-1''caf%E9.fq")
        assert part_filename(parameters) == "café.fq"

    @pytest.mark.parametrize(
        ("raw", "name"),
        [
            ("%E6%A0%B7%E6%9C%AC.fq", "样本.fq"),
            ("50%.fq", "50%.fq"),  # a lone % is the name's own
            ("%FF.fq", "%FF.fq"),  # escapes that are not UTF-8 are the name's own
            ("a%22b.fq", 'a"b.fq'),
        ],
    )
    def test_percent_encoded_plain_names(self, raw: str, name: str) -> None:
        assert part_filename({"filename": raw}) == name

    def test_a_missing_name_is_empty(self) -> None:
        assert part_filename({"name": "file"}) == ""

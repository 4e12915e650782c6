"""The streaming FASTQ validator: gzip integrity, record rules, statistics, chunk independence."""

import bz2
import gzip
import hashlib
import itertools
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from src.sampleFileUpload.files.constants import FastqErrorCode as Code
from src.sampleFileUpload.files.fastq import FastqReport, FastqValidator


def record(name: bytes, sequence: bytes, quality: bytes | None = None, plus: bytes = b"+") -> bytes:
    quality = b"I" * len(sequence) if quality is None else quality
    return b"@%s\n%s\n%s\n%s\n" % (name, sequence, plus, quality)


GOOD = (
    record(b"r1 1:N:0:ACGT", b"ACGTN")
    + record(b"r2", b"acgtRYKM", b"!#5?@I~~")
    + record(b"r3", b"G")
)


def validate(data: bytes, chunk_size: int | None = None, **options: Any) -> FastqReport:
    validator = FastqValidator(**options)
    step = chunk_size or max(len(data), 1)
    for start in range(0, len(data), step):
        validator.feed(data[start : start + step])
    return validator.finish()


def codes(report: FastqReport) -> list[tuple[int | None, str]]:
    return [(issue.line, issue.code) for issue in report.errors]


def bgzf(data: bytes, block: int = 100) -> bytes:
    """Real BGZF: one gzip member per block with the BC extra field, then the empty EOF member."""

    def member(payload: bytes) -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        deflated = compressor.compress(payload) + compressor.flush()
        extra = b"BC" + struct.pack("<HH", 2, 25 + len(deflated))
        header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra))
        return header + extra + deflated + struct.pack("<II", zlib.crc32(payload), len(payload))

    members = [member(data[i : i + block]) for i in range(0, len(data), block)]
    return b"".join(members) + member(b"")


class TestValidFiles:
    def test_plain_statistics(self) -> None:
        report = validate(GOOD)
        assert report.valid
        assert report.errors == ()
        assert not report.compressed
        assert (report.read_count, report.base_count) == (3, 14)
        assert (report.min_length, report.max_length) == (1, 8)
        assert report.mean_length == pytest.approx(14 / 3)
        assert report.name_digest == hashlib.sha256(b"@r1\n@r2\n@r3\n").hexdigest()

    def test_gzip_detected_from_content_gives_same_statistics(self) -> None:
        report = validate(gzip.compress(GOOD))
        assert report.valid
        assert report.compressed
        assert report.decompressed_bytes == len(GOOD)
        plain = validate(GOOD)
        assert (report.read_count, report.base_count, report.name_digest) == (
            plain.read_count,
            plain.base_count,
            plain.name_digest,
        )

    def test_missing_final_newline_is_accepted(self) -> None:
        report = validate(GOOD.rstrip(b"\n"))
        assert report.valid
        assert report.read_count == 3

    def test_multi_member_gzip(self) -> None:
        data = gzip.compress(GOOD) + gzip.compress(b"") + gzip.compress(GOOD)
        report = validate(data)
        assert report.valid
        assert report.read_count == 6

    def test_member_boundary_inside_a_record(self) -> None:
        report = validate(gzip.compress(GOOD[:7]) + gzip.compress(GOOD[7:]))
        assert report.valid
        assert report.read_count == 3

    def test_bgzf_many_small_members(self) -> None:
        text = GOOD * 200
        data = bgzf(text, block=97)
        assert data.count(b"\x1f\x8b\x08\x04") > 50
        report = validate(data, chunk_size=1000)
        assert report.valid
        assert report.read_count == 600
        assert report.name_digest == validate(text).name_digest

    def test_plus_line_may_repeat_the_title(self) -> None:
        report = validate(record(b"r1 x", b"ACGT", plus=b"+r1 x") + record(b"r2", b"ACGT"))
        assert report.valid


class TestNameDigest:
    def test_r1_and_r2_of_a_pair_have_equal_digests(self) -> None:
        names = [b"A00123:8:H2:1:1101:%d:1000" % i for i in range(50)]
        r1 = b"".join(
            record(name + b"/1" + (b" 1:N:0:ACGT" if i % 2 else b"\tBC:Z:AC"), b"ACGT")
            for i, name in enumerate(names)
        )
        r2 = b"".join(record(name + b"/2 2:N:0:ACGT", b"TTGCA") for name in names)
        first, second = validate(r1), validate(gzip.compress(r2))
        assert first.valid
        assert second.valid
        assert first.read_count == second.read_count == 50
        assert first.name_digest == second.name_digest

    def test_order_and_names_matter(self) -> None:
        one = record(b"a", b"A") + record(b"b", b"A")
        assert (
            validate(one).name_digest
            != validate(record(b"b", b"A") + record(b"a", b"A")).name_digest
        )
        assert (
            validate(one).name_digest
            != validate(record(b"a", b"A") + record(b"c", b"A")).name_digest
        )

    def test_only_one_trailing_mate_suffix_is_removed(self) -> None:
        report = validate(record(b"a/1/2", b"A") + record(b"b/3", b"A"))
        assert report.name_digest == hashlib.sha256(b"@a/1\n@b/3\n").hexdigest()


class TestRecordErrors:
    """Each rule, with the 1-based line of the offending text."""

    def test_missing_at_stops_after_the_records_before(self) -> None:
        data = GOOD + b"r4\nACGT\n+\nIIII\n" + GOOD
        report = validate(data)
        assert codes(report) == [(13, Code.MISSING_AT)]
        assert "not checked" in report.errors[0].message
        assert report.read_count == 3

    def test_missing_plus(self) -> None:
        report = validate(GOOD + b"@r4\nACGT\n-\nIIII\n")
        assert codes(report) == [(15, Code.MISSING_PLUS)]
        assert report.read_count == 3

    def test_plus_line_with_a_different_title(self) -> None:
        report = validate(GOOD + record(b"r4", b"AC", plus=b"+r5"))
        assert codes(report) == [(15, Code.PLUS_NAME_MISMATCH)]

    def test_length_mismatch(self) -> None:
        report = validate(GOOD + record(b"r4", b"ACGT", b"III") + GOOD)
        assert codes(report) == [(16, Code.LENGTH_MISMATCH)]
        assert report.read_count == 7

    @pytest.mark.parametrize("bad", [b" ", b"\x7f", b"\x80", b"\t"])
    def test_bad_quality(self, bad: bytes) -> None:
        report = validate(GOOD + record(b"r4", b"ACGT", b"II" + bad + b"I"))
        assert codes(report) == [(16, Code.BAD_QUALITY)]
        assert "position 3" in report.errors[0].message

    @pytest.mark.parametrize("bad", [b".", b"-", b"X", b"1", b"*"])
    def test_bad_sequence(self, bad: bytes) -> None:
        report = validate(record(b"r1", b"AC" + bad + b"T") + GOOD)
        assert codes(report) == [(2, Code.BAD_SEQUENCE)]

    def test_empty_read(self) -> None:
        report = validate(GOOD + record(b"r4", b"", b""))
        assert codes(report) == [(14, Code.EMPTY_READ)]

    def test_crlf_line_endings(self) -> None:
        report = validate(GOOD.replace(b"\n", b"\r\n"))
        assert codes(report) == [(1, Code.CRLF_LINE_ENDINGS)]

    def test_crlf_from_a_later_line(self) -> None:
        report = validate(GOOD + record(b"r4", b"ACGT").replace(b"\n", b"\r\n", 2))
        assert codes(report) == [(13, Code.CRLF_LINE_ENDINGS)]
        assert report.read_count == 3

    def test_truncated_record(self) -> None:
        report = validate(GOOD + b"@r4\nACGT\n")
        assert codes(report) == [(13, Code.TRUNCATED_RECORD)]
        assert report.read_count == 3

    def test_record_too_long(self) -> None:
        report = validate(b"@" + b"A" * 5000, chunk_size=100, max_record_bytes=1000)
        assert codes(report) == [(1, Code.RECORD_TOO_LONG)]

    def test_several_errors_in_line_order_with_a_cap(self) -> None:
        data = b"".join(
            record(b"r%d" % i, b"ACGT", b"II I" if i % 2 else b"III") for i in range(10)
        )
        report = validate(data, max_errors=3)
        assert codes(report) == [
            (4, Code.LENGTH_MISMATCH),
            (8, Code.BAD_QUALITY),
            (12, Code.LENGTH_MISMATCH),
        ]
        assert report.error_count == 10
        assert not report.valid
        assert report.read_count == 10

    def test_zero_max_errors_still_counts(self) -> None:
        report = validate(record(b"r", b"AC", b"I"), max_errors=0)
        assert report.errors == ()
        assert report.error_count == 1
        assert not report.valid


class TestWholeFile:
    def test_empty_file(self) -> None:
        assert codes(validate(b"")) == [(None, Code.FASTQ_EMPTY)]

    def test_empty_gzip(self) -> None:
        report = validate(gzip.compress(b""))
        assert report.compressed
        assert codes(report) == [(None, Code.FASTQ_EMPTY)]

    def test_binary_file(self) -> None:
        report = validate(bytes(range(256)) * 100_000, chunk_size=65536)
        assert codes(report) == [(1, Code.NOT_FASTQ)]
        assert "0x00" in report.errors[0].message

    @pytest.mark.parametrize(
        ("data", "named"),
        [
            (bz2.compress(GOOD), "bzip2"),
            (b">seq1\nACGT\n", "FASTA"),
            (b"\xfd7zXZ\x00\x00", "xz"),
        ],
    )
    def test_other_formats_are_named(self, data: bytes, named: str) -> None:
        report = validate(data)
        assert codes(report) == [(1, Code.NOT_FASTQ)]
        assert named in report.errors[0].message

    def test_gzip_of_binary_data_stops_early(self) -> None:
        zeros = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
        data = b"".join(zeros.compress(bytes(1 << 20)) for _ in range(200)) + zeros.flush()
        report = validate(data, chunk_size=1 << 16)
        assert codes(report) == [(1, Code.NOT_FASTQ)]
        assert report.decompressed_bytes < 8 << 20

    def test_feed_after_finish_is_refused_and_finish_repeats(self) -> None:
        validator = FastqValidator()
        validator.feed(GOOD)
        report = validator.finish()
        assert validator.finish() == report
        with pytest.raises(RuntimeError):
            validator.feed(GOOD)


class TestGzipIntegrity:
    def test_truncated(self) -> None:
        data = gzip.compress(GOOD * 100)
        report = validate(data[: len(data) // 2])
        assert (None, Code.GZIP_TRUNCATED) in codes(report)
        assert Code.TRUNCATED_RECORD not in [code for _, code in codes(report)]

    def test_truncated_in_the_trailer(self) -> None:
        report = validate(gzip.compress(GOOD)[:-3])
        assert codes(report) == [(None, Code.GZIP_TRUNCATED)]
        assert report.read_count == 3

    @pytest.mark.parametrize(
        "offset", [-8, -5, -4, -1], ids=["crc", "crc-high", "isize", "isize-high"]
    )
    def test_bad_crc_or_length(self, offset: int) -> None:
        data = bytearray(gzip.compress(GOOD) + gzip.compress(GOOD))
        data[offset] ^= 0x01
        report = validate(bytes(data))
        assert codes(report) == [(None, Code.GZIP_BAD_CRC)]
        assert "member 2" in report.errors[0].message

    def test_corrupt_deflate_data(self) -> None:
        data = bytearray(gzip.compress(GOOD * 50))
        data[12:20] = b"\xff" * 8
        report = validate(bytes(data))
        assert codes(report)[-1][1] in {Code.GZIP_CORRUPT, Code.GZIP_BAD_CRC}
        assert not report.valid

    @pytest.mark.parametrize("garbage", [b"garbage", b"\x00" * 512, b"\x1f", b"\x1f\x8c..."])
    def test_trailing_garbage(self, garbage: bytes) -> None:
        report = validate(gzip.compress(GOOD) + garbage)
        assert codes(report) == [(None, Code.GZIP_TRAILING_GARBAGE)]
        assert report.read_count == 3

    # gzip is inflated one block ahead of the text checks: what the inflater found must still be
    # reported in file order, and nothing it found past a stop may leak into the report.

    def test_text_stop_hides_a_later_gzip_failure_already_inflated(self) -> None:
        text = GOOD * 40 + b"not a record\n" + GOOD * 40
        data = gzip.compress(text) + b"garbage"
        for block_size in (2, 7, 64, 1024):
            report = validate(data, chunk_size=5, block_size=block_size)
            assert codes(report) == [(40 * 12 + 1, Code.MISSING_AT)], block_size
            assert report.read_count == 120

    def test_gzip_failure_after_good_text_keeps_the_records_before(self) -> None:
        data = bytearray(gzip.compress(GOOD * 40) + gzip.compress(GOOD * 40))
        data[-8] ^= 0x01  # the second member's CRC
        for block_size in (2, 7, 64, 1024):
            whole = validate(bytes(data), block_size=block_size)
            report = validate(bytes(data), chunk_size=3, block_size=block_size)
            assert report == whole
            assert codes(report) == [(None, Code.GZIP_BAD_CRC)], block_size
            # The first member's records always; the second's as far as it was read.
            assert 120 <= report.read_count <= 240

    def test_text_inflated_ahead_is_bounded_whatever_the_ratio(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        text = record(b"read", b"ACGT" * 250) * 2000  # about 4 MB, compresses over 100:1
        data = gzip.compress(text)
        largest = 0
        apply = FastqValidator._apply

        def watched(self: FastqValidator, events: list[Any]) -> None:
            nonlocal largest
            largest = max(largest, sum(len(event) for event in events if isinstance(event, bytes)))
            apply(self, events)

        monkeypatch.setattr(FastqValidator, "_apply", watched)
        report = validate(data, block_size=1024)
        # A batch stops at 2 inflate steps of 4 blocks, plus the step that crossed the mark.
        assert 0 < largest <= 3 * 4 * 1024
        plain = validate(text, block_size=1024)
        assert report.valid
        assert report.read_count == plain.read_count == 2000
        assert report.name_digest == plain.name_digest
        assert report.decompressed_bytes == len(text)

    @pytest.mark.parametrize("block_size", [2, 3, 5, 16, 61])
    def test_gzip_report_equals_the_plain_report_at_every_cut(self, block_size: int) -> None:
        text = GOOD + record(b"r4", b"ACXT") + GOOD[:-3]
        plain = validate(text)
        data = gzip.compress(text)
        for cut in range(1, len(data)):
            validator = FastqValidator(block_size=block_size)
            validator.feed(data[:cut])
            validator.feed(data[cut:])
            report = validator.finish()
            assert codes(report) == codes(plain), cut
            assert report.read_count == plain.read_count
            assert report.name_digest == plain.name_digest
            assert report.decompressed_bytes == plain.decompressed_bytes

    def test_bomb_refused_by_output_cap_across_members(self) -> None:
        text = record(b"read", b"ACGT" * 25) * 10_000
        member = gzip.compress(text)
        data = member * (200_000_000 // len(text))
        cap = 10_000_000
        report = validate(data, chunk_size=1 << 16, max_decompressed_bytes=cap)
        assert codes(report) == [(None, Code.GZIP_BOMB)]
        assert report.decompressed_bytes == cap
        assert report.read_count == cap // len(record(b"read", b"ACGT" * 25))

    def test_bomb_refused_by_compression_ratio(self) -> None:
        compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
        text = record(b"read", b"ACGT" * 25) * 10_000
        data = b"".join(compressor.compress(text) for _ in range(100)) + compressor.flush()
        report = validate(data, max_ratio=50)
        assert codes(report) == [(None, Code.GZIP_BOMB)]
        assert report.decompressed_bytes < 100 * len(text)

    def test_same_file_within_limits_is_valid(self) -> None:
        text = record(b"read", b"ACGT" * 25) * 10_000
        report = validate(gzip.compress(text), max_decompressed_bytes=len(text), max_ratio=None)
        assert report.valid


# ---- properties ------------------------------------------------------------------------------

names = st.binary(min_size=1, max_size=12).map(
    lambda raw: bytes(33 + byte % 94 for byte in raw).replace(b"@", b"a").replace(b"/", b"_")
)
reads = st.tuples(
    names,
    st.binary(min_size=1, max_size=40).map(lambda raw: bytes(b"ACGTNacgtnRY"[b % 12] for b in raw)),
    st.randoms(use_true_random=False),
).map(lambda item: record(item[0], item[1], bytes(33 + item[2].randrange(94) for _ in item[1])))
fastq_texts = st.lists(reads, min_size=1, max_size=25).map(b"".join)


@st.composite
def gzip_members(draw: st.DrawFn, text: bytes) -> bytes:
    """`text` as one or more gzip members cut at drawn points (possibly inside records)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    level = draw(st.sampled_from([1, 6, 9]))
    return b"".join(gzip.compress(piece, compresslevel=level) for piece in pieces)


def feed_in_pieces(data: bytes, cuts: list[int], **options: int) -> FastqReport:
    validator = FastqValidator(**options)
    edges = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    for start, end in itertools.pairwise(edges):
        validator.feed(data[start:end])
    return validator.finish()


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @PROPERTY
    @given(text=fastq_texts, data=st.data())
    def test_generated_fastq_is_valid_plain_and_gzipped(
        self, text: bytes, data: st.DataObject
    ) -> None:
        lines = text.split(b"\n")
        plain = validate(text)
        assert plain.valid, plain.errors
        assert plain.read_count == text.count(b"\n") // 4
        assert plain.base_count == sum(map(len, lines[1::4]))
        packed = validate(data.draw(gzip_members(text)))
        assert packed.valid, packed.errors
        assert (packed.read_count, packed.base_count, packed.name_digest) == (
            plain.read_count,
            plain.base_count,
            plain.name_digest,
        )

    @PROPERTY
    @given(
        text=fastq_texts,
        data=st.data(),
        cuts=st.lists(st.integers(min_value=0), max_size=30),
        block_size=st.integers(2, 64),
        damage=st.sampled_from(["none", "truncate", "garbage", "flip", "bad-byte"]),
    )
    def test_chunking_never_changes_the_report(
        self, text: bytes, data: st.DataObject, cuts: list[int], block_size: int, damage: str
    ) -> None:
        raw = bytearray(data.draw(st.sampled_from([text, data.draw(gzip_members(text))])))
        position = data.draw(st.integers(0, len(raw) - 1))
        if damage == "truncate":
            del raw[position:]
        elif damage == "garbage":
            raw += b"\x00garbage"
        elif damage == "flip":
            raw[position] ^= 1 << data.draw(st.integers(0, 7))
        elif damage == "bad-byte":
            raw[position:position] = data.draw(st.sampled_from([b"\r\n", b" ", b"\x7f", b"\n"]))
        file = bytes(raw)
        whole = feed_in_pieces(file, [], block_size=block_size)
        assert feed_in_pieces(file, cuts, block_size=block_size) == whole
        assert feed_in_pieces(file, list(range(len(file))), block_size=block_size) == whole

    @PROPERTY
    @given(
        text=fastq_texts,
        cuts=st.lists(st.integers(min_value=0), max_size=30),
        block_size=st.integers(2, 64),
    )
    def test_internal_block_size_never_changes_a_plain_report(
        self, text: bytes, cuts: list[int], block_size: int
    ) -> None:
        damaged = text.replace(b"\n+\n", b"\n+\n\x7f", 1) + text[: len(text) // 2]
        for file in (text, damaged):
            assert feed_in_pieces(file, cuts, block_size=block_size) == validate(file)

    @PROPERTY
    @given(text=fastq_texts, data=st.data(), block_size=st.integers(2, 64))
    def test_internal_block_size_never_changes_a_valid_gzip_report(
        self, text: bytes, data: st.DataObject, block_size: int
    ) -> None:
        file = data.draw(gzip_members(text))
        assert feed_in_pieces(file, [], block_size=block_size) == validate(file)

    @PROPERTY
    @given(
        text=fastq_texts,
        data=st.data(),
        mutation=st.sampled_from(["no-at", "no-plus", "space-quality", "del-quality", "drop-base"]),
        compressed=st.booleans(),
    )
    def test_single_mutation_fails_at_its_line(
        self, text: bytes, data: st.DataObject, mutation: str, compressed: bool
    ) -> None:
        lines = text.split(b"\n")
        count = len(lines) // 4
        index = data.draw(st.integers(0, count - 1))
        title, sequence, quality = 4 * index, 4 * index + 1, 4 * index + 3
        expected_read_count = count
        if mutation == "no-at":
            lines[title] = lines[title][1:]
            code, line = (Code.NOT_FASTQ, 1) if index == 0 else (Code.MISSING_AT, title + 1)
            expected_read_count = index
        elif mutation == "no-plus":
            lines[title + 2] = lines[title + 2][1:]
            code, line = Code.MISSING_PLUS, title + 3
            expected_read_count = index
        elif mutation in {"space-quality", "del-quality"}:
            column = data.draw(st.integers(0, len(lines[quality]) - 1))
            bad = b" " if mutation == "space-quality" else b"\x7f"
            lines[quality] = lines[quality][:column] + bad + lines[quality][column + 1 :]
            code, line = Code.BAD_QUALITY, quality + 1
        else:
            column = data.draw(st.integers(0, len(lines[sequence]) - 1))
            lines[sequence] = lines[sequence][:column] + lines[sequence][column + 1 :]
            code, line = (
                (Code.EMPTY_READ, sequence + 1)
                if not lines[sequence]
                else (Code.LENGTH_MISMATCH, quality + 1)
            )
        mutated = b"\n".join(lines)
        report = validate(data.draw(gzip_members(mutated)) if compressed else mutated)
        assert not report.valid
        assert report.errors[0].code == code
        assert report.errors[0].line == line
        if mutation != "drop-base" or lines[sequence]:
            assert len(report.errors) == 1
        assert report.read_count == expected_read_count

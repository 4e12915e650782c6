"""Streaming FASTQ validation: `FastqValidator` is fed a sequence file's bytes in chunks of any size
as they arrive (`feed`), then `finish()` returns a `FastqReport` with read and base counts, read
lengths, an order-sensitive digest of read names and line-numbered errors with stable
`FastqErrorCode`s. Compression is detected from the gzip magic bytes, not the filename; gzip input
is inflated member by member with ISA-L (multi-member and BGZF accepted), with CRC/length,
truncation and trailing-garbage checks and an output-size and compression-ratio cap against
decompression bombs. Records are the strict 4-line form: `@name [comment]`, a sequence of IUPAC
nucleotide letters in either case (`.` and `-` are refused: N is the one unknown base archives
accept), `+` optionally repeating the title, and a quality line of the same length in `!`..`~`.
CRLF line endings, empty reads, a file without records and a last record cut short are errors; a
missing newline after the last line is accepted. Framing errors (not FASTQ, missing `@` or `+`,
CRLF, an over-long record, broken gzip) stop validation there, and the statistics then cover the
records before the failure. Speed comes from checking a whole decompressed chunk at once (`split`,
stride slices, `join` and `translate` over all its lines) instead of looping over records in
Python; only the error path visits records one by one. gzip input is inflated one block ahead on
a helper thread (ISA-L releases the GIL), so inflating block n+1 overlaps the text checks of
block n; what the inflater produced is applied in order, so the report is the same as a serial
pass. Input is re-cut into fixed-size blocks internally, so a report never depends on how the
caller chunked the bytes. `name_digest` is the
SHA-256 of every read's title line cut at its first space or tab (the `@` kept) and stripped of a
trailing `/1` or `/2`, each followed by a newline, so R1 and R2 of a pair get the same digest; in
shell: `zcat x.fq.gz | awk 'NR%4==1' | sed -E 's/[ \\t].*//; s#/[12]$##' | sha256sum`.
Synchronous (run it in a worker thread), one instance per file, not thread-safe.
"""

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

from isal import isal_zlib

from src.sampleFileUpload.files.constants import FastqErrorCode

_GZIP_MAGIC = b"\x1f\x8b"
# isal's stub declares `error` as an instance; at run time it is the IsalError class.
_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)
# Other containers people upload by mistake, named in the NOT_FASTQ message.
_OTHER_FORMATS = (
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"PK\x03\x04", "a zip archive"),
    (b"BAM\x01", "an uncompressed BAM file"),
    (b">", "FASTA (no qualities)"),
)
_SEQUENCE_LETTERS = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn"
_QUALITY_CHARACTERS = bytes(range(ord("!"), ord("~") + 1))

_BLOCK_SIZE = 256 << 10
_RATIO_CHECK_FLOOR = 64 << 20
# Record-level codes sort in this order when several fall on the same line.
_CODE_ORDER = {code: position for position, code in enumerate(FastqErrorCode)}

# What inflating one block produced, in order: FASTQ text (bytes), or a framing failure that
# stops the validation (code, message).
_InflateEvent = bytes | tuple[FastqErrorCode, str]

# The threads that inflate ahead, shared by every validator of the process (each has at most one
# block in flight); a thread starts on the first gzip block.
_INFLATE_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fastq-inflate")


@dataclass(frozen=True, slots=True)
class FastqIssue:
    """One problem: `line` is the 1-based line of the decompressed text (None for gzip framing)."""

    line: int | None
    code: FastqErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class FastqReport:
    """The outcome of a validation.

    `errors` holds the first `max_errors` of `error_count` errors in line order; `valid` means there
    were none. `decompressed_bytes` is the FASTQ text read (the file size for plain files). After a
    framing error the counts, lengths and digest cover the records before it.
    """

    valid: bool
    compressed: bool
    read_count: int
    base_count: int
    min_length: int | None
    max_length: int | None
    mean_length: float | None
    name_digest: str
    errors: tuple[FastqIssue, ...]
    error_count: int
    decompressed_bytes: int


def _show(byte: int) -> str:
    return repr(chr(byte)) if 32 <= byte < 127 else f"byte 0x{byte:02x}"


def _first_bad(line: bytes, allowed: bytes) -> tuple[int, int]:
    """The first byte of `line` not in `allowed` and its 1-based column."""
    bad = line.translate(None, allowed)[0]
    return bad, line.index(bad) + 1


def _framing_failure(
    buffer: bytes, records_end: int, titles: list[bytes], separators: list[bytes]
) -> tuple[int, FastqErrorCode, str] | None:
    """The earliest framing failure among the complete records (CRLF line endings, a title
    without '@', a separator without '+') as (line index in the buffer, code, message); the
    validation stops there, after the records before it."""
    framing: list[tuple[int, FastqErrorCode, str]] = []
    # A one-byte search is a memchr; the two-byte pattern is only needed once a CR is seen.
    crlf = buffer.find(b"\r", 0, records_end)
    if crlf >= 0:
        crlf = buffer.find(b"\r\n", crlf, records_end)
    if crlf >= 0:
        framing.append(
            (
                buffer.count(b"\n", 0, crlf),
                FastqErrorCode.CRLF_LINE_ENDINGS,
                "lines end with CRLF (Windows line endings); convert the file with dos2unix",
            )
        )
    # All lines start with '@' exactly when the smallest and the largest do.
    if not (min(titles).startswith(b"@") and max(titles).startswith(b"@")):
        index = next(i for i, title in enumerate(titles) if not title.startswith(b"@"))
        framing.append(
            (
                4 * index,
                FastqErrorCode.MISSING_AT,
                "a record's first line must start with '@', found "
                + (_show(titles[index][0]) if titles[index] else "an empty line"),
            )
        )
    if not (min(separators).startswith(b"+") and max(separators).startswith(b"+")):
        index = next(i for i, line in enumerate(separators) if not line.startswith(b"+"))
        framing.append(
            (
                4 * index + 2,
                FastqErrorCode.MISSING_PLUS,
                "a record's third line must start with '+', found "
                + (_show(separators[index][0]) if separators[index] else "an empty line"),
            )
        )
    return min(framing, key=lambda failure: failure[0]) if framing else None


class FastqValidator:
    """Validates one FASTQ or FASTQ.gz file fed in chunks; see the module docstring.

    `max_errors` errors are kept (all are counted). gzip input inflating to more than
    `max_decompressed_bytes`, or past 64 MiB of output to more than `max_ratio` times the compressed
    bytes read, is refused as a bomb (None disables either cap). A record longer than
    `max_record_bytes` is refused, which bounds memory on binary or unterminated input.
    `block_size` is the internal processing granularity: memory is about 4 blocks of text plus one
    record, and for gzip two batches of inflated text (one being checked, one inflating ahead) of
    at most 12 blocks each, whatever the compression ratio; reports do not depend on it except
    for how far a bad-CRC member or a ratio bomb was read before the refusal.
    """

    def __init__(
        self,
        *,
        max_errors: int = 100,
        max_decompressed_bytes: int | None = None,
        max_ratio: float | None = 200.0,
        max_record_bytes: int = 32 << 20,
        block_size: int = _BLOCK_SIZE,
    ) -> None:
        if max_errors < 0 or block_size < 2 or max_record_bytes < 1:
            raise ValueError("max_errors >= 0, block_size >= 2 and max_record_bytes >= 1 needed")
        self._max_errors = max_errors
        self._max_decompressed_bytes = max_decompressed_bytes
        self._max_ratio = max_ratio
        self._max_record_bytes = max_record_bytes
        self._block_size = block_size
        # Output steps scale with the block so small test blocks exercise the bounded-output path.
        self._inflate_step = 4 * block_size

        self._input = bytearray()
        self._compressed: bool | None = None
        self._stopped = False
        self._finished = False

        # The inflater's state, touched only by the block being inflated (one at a time).
        self._inflater: isal_zlib.Decompress | None = None
        self._member_head = b""
        self._members = 0
        self._compressed_in = 0
        self._inflated_out = 0
        self._inflate_stopped = False
        self._inflating: Future[list[_InflateEvent]] | None = None
        self._inflate_input = b""
        self._inflate_batch = 2 * self._inflate_step
        self._batch_out = 0
        # The text applied so far (the report's decompressed_bytes).
        self._decompressed_out = 0
        self._gzip_truncated = False

        self._pending: list[bytes] = []
        self._pending_size = 0
        self._line_offset = 0
        self._seen_text = False

        self._read_count = 0
        self._base_count = 0
        self._min_length: int | None = None
        self._max_length: int | None = None
        self._names = hashlib.sha256()
        self._errors: list[FastqIssue] = []
        self._error_count = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the file; bad data is recorded, never raised."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if self._stopped:
            return
        size = self._block_size
        view = memoryview(chunk).cast("B")
        start = 0
        if self._input:
            start = min(size - len(self._input), len(view))
            self._input += view[:start]
            if len(self._input) < size:
                return
            block = bytes(self._input)
            self._input.clear()
            self._process_block(block)
        while len(view) - start >= size and not self._stopped:
            self._process_block(bytes(view[start : start + size]))
            start += size
        if start < len(view) and not self._stopped:
            self._input += view[start:]

    def finish(self) -> FastqReport:
        """Declare the end of the file and return the report (idempotent)."""
        if not self._finished:
            if not self._stopped and self._input:
                self._process_block(bytes(self._input))
            self._input.clear()
            self._apply_inflated()
            self._finished = True
            if not self._stopped and self._compressed:
                self._finish_gzip()
            if not self._stopped:
                self._finish_text()
            if self._read_count == 0 and self._error_count == 0:
                self._add(None, FastqErrorCode.FASTQ_EMPTY, "the file contains no FASTQ record")
        return FastqReport(
            valid=self._error_count == 0,
            compressed=bool(self._compressed),
            read_count=self._read_count,
            base_count=self._base_count,
            min_length=self._min_length,
            max_length=self._max_length,
            mean_length=self._base_count / self._read_count if self._read_count else None,
            name_digest=self._names.hexdigest(),
            errors=tuple(self._errors),
            error_count=self._error_count,
            decompressed_bytes=self._decompressed_out,
        )

    # -- errors --------------------------------------------------------------------------------

    def _add(self, line: int | None, code: FastqErrorCode, message: str) -> None:
        self._error_count += 1
        if len(self._errors) < self._max_errors:
            self._errors.append(FastqIssue(line=line, code=code, message=message))

    def _stop(self, line: int | None, code: FastqErrorCode, message: str) -> None:
        self._add(line, code, message + "; the rest of the file was not checked")
        self._stopped = True
        self._pending.clear()

    # -- container -----------------------------------------------------------------------------

    def _process_block(self, block: bytes) -> None:
        if self._compressed is None:
            self._compressed = block.startswith(_GZIP_MAGIC)
        if self._compressed:
            # Catch up with the previous block's inflating, start this one's, then check the
            # previous block's text while this one inflates.
            inflated = self._catch_up()
            if not self._inflate_stopped and not self._stopped:
                self._compressed_in += len(block)
                self._inflate_input = block
                self._inflating = _INFLATE_POOL.submit(self._inflate)
            self._apply(inflated)
        else:
            self._decompressed_out += len(block)
            self._text(block)

    def _catch_up(self) -> list[_InflateEvent]:
        """Wait for the inflating in flight and inflate the rest of its input, applying each
        batch while the next inflates; return the last batch, not yet applied. A batch holds at
        most about `_inflate_batch` bytes of text, which bounds memory whatever the ratio."""
        if self._inflating is None:
            return []
        inflated = self._inflating.result()
        self._inflating = None
        while self._inflate_input and not self._inflate_stopped and not self._stopped:
            self._inflating = _INFLATE_POOL.submit(self._inflate)
            self._apply(inflated)
            inflated = self._inflating.result()
            self._inflating = None
        return inflated

    def _apply_inflated(self) -> None:
        """Apply everything still to inflate."""
        self._apply(self._catch_up())
        self._inflate_input = b""

    def _apply(self, events: list[_InflateEvent]) -> None:
        for event in events:
            if self._stopped:
                return
            if isinstance(event, bytes):
                self._decompressed_out += len(event)
                self._text(event)
            else:
                self._stop(None, *event)

    # The inflater side: runs on an inflate thread, touches only the inflater's state and
    # returns what it produced; the validator's thread applies it.

    def _inflate(self) -> list[_InflateEvent]:
        """Inflate `_inflate_input` until it is used up or a batch of text is ready; what is
        left stays in `_inflate_input`."""
        events: list[_InflateEvent] = []
        self._batch_out = 0
        data, self._inflate_input = self._inflate_input, b""
        while data and not self._inflate_stopped:
            if self._batch_out >= self._inflate_batch:
                self._inflate_input = data
                break
            if self._inflater is None:
                head = self._member_head + data
                if len(head) < 2:
                    self._member_head = head
                    break
                self._member_head = b""
                if not head.startswith(_GZIP_MAGIC):
                    self._inflate_stop(
                        events,
                        FastqErrorCode.GZIP_TRAILING_GARBAGE,
                        f"data that is not a gzip member follows gzip member {self._members}",
                    )
                    break
                data = head
                self._inflater = isal_zlib.decompressobj(31)
                self._members += 1
            data = self._inflate_member(self._inflater, data, events)
        return events

    def _inflate_stop(
        self, events: list[_InflateEvent], code: FastqErrorCode, message: str
    ) -> None:
        events.append((code, message))
        self._inflate_stopped = True

    def _inflate_member(
        self, inflater: isal_zlib.Decompress, data: bytes, events: list[_InflateEvent]
    ) -> bytes:
        """Inflate `data` into the current member; return the bytes after the member's end."""
        cap = self._max_decompressed_bytes
        while True:
            step = self._inflate_step
            if cap is not None:
                step = min(step, cap - self._inflated_out + 1)
            try:
                out = inflater.decompress(data, step)
            except _INFLATE_ERROR as error:
                if "checksum" in str(error).lower():
                    self._inflate_stop(
                        events,
                        FastqErrorCode.GZIP_BAD_CRC,
                        f"gzip member {self._members} fails its CRC-32 or length check",
                    )
                else:
                    self._inflate_stop(
                        events,
                        FastqErrorCode.GZIP_CORRUPT,
                        f"gzip member {self._members} is corrupt ({error})",
                    )
                return b""
            if cap is not None and self._inflated_out + len(out) > cap:
                kept = out[: cap - self._inflated_out]
                if kept:
                    events.append(kept)
                self._inflated_out = cap
                self._inflate_stop(
                    events,
                    FastqErrorCode.GZIP_BOMB,
                    f"decompressed size exceeds the limit of {cap} bytes",
                )
                return b""
            self._inflated_out += len(out)
            self._batch_out += len(out)
            if out:
                events.append(out)
            ratio = self._max_ratio
            if (
                ratio is not None
                and self._inflated_out > _RATIO_CHECK_FLOOR
                and self._inflated_out > ratio * self._compressed_in
            ):
                self._inflate_stop(
                    events,
                    FastqErrorCode.GZIP_BOMB,
                    f"compression ratio exceeds {ratio:g}:1 "
                    f"({self._inflated_out} bytes from {self._compressed_in})",
                )
                return b""
            if inflater.eof:
                self._inflater = None
                rest: bytes = inflater.unused_data
                return rest
            if len(out) < step:
                return b""
            data = inflater.unconsumed_tail
            if self._batch_out >= self._inflate_batch:
                return data  # the member goes on: the next batch continues it

    def _finish_gzip(self) -> None:
        if self._member_head:
            self._stop(
                None,
                FastqErrorCode.GZIP_TRAILING_GARBAGE,
                f"data that is not a gzip member follows gzip member {self._members}",
            )
        elif self._inflater is not None:
            self._gzip_truncated = True
            self._add(
                None,
                FastqErrorCode.GZIP_TRUNCATED,
                f"the file ends inside gzip member {self._members}: it is truncated",
            )

    # -- text ----------------------------------------------------------------------------------

    def _text(self, data: bytes) -> None:
        if not self._seen_text:
            self._seen_text = True
            if not data.startswith(b"@"):
                self._not_fastq(data)
                return
        self._pending.append(data)
        self._pending_size += len(data)
        # Without a newline nothing can complete; joining only then keeps a long record linear.
        if b"\n" in data:
            buffer = b"".join(self._pending) if len(self._pending) > 1 else data
            self._pending.clear()
            carry = self._records(buffer)
            if self._stopped:
                return
            self._pending.append(carry)
            self._pending_size = len(carry)
        if self._pending_size > self._max_record_bytes:
            self._stop(
                self._line_offset + 1,
                FastqErrorCode.RECORD_TOO_LONG,
                f"a record longer than {self._max_record_bytes} bytes starts here "
                "(binary data or a missing line break?)",
            )

    def _not_fastq(self, data: bytes) -> None:
        kind = next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)
        if kind is None:
            kind = f"not FASTQ (the first byte is {_show(data[0])}, FASTQ starts with '@')"
        self._stop(1, FastqErrorCode.NOT_FASTQ, f"the file is {kind}")

    def _finish_text(self) -> None:
        buffer = b"".join(self._pending)
        self._pending.clear()
        if not buffer:
            return
        if not buffer.endswith(b"\n"):
            buffer += b"\n"
        carry = self._records(buffer)
        if carry and not self._stopped and not self._gzip_truncated:
            lines = carry.count(b"\n")
            self._add(
                self._line_offset + 1,
                FastqErrorCode.TRUNCATED_RECORD,
                f"the file ends inside a record: {lines} of its 4 lines are present",
            )

    def _records(self, buffer: bytes) -> bytes:
        """Check every complete record in `buffer`; return the incomplete rest."""
        lines = buffer.split(b"\n")
        count = (len(lines) - 1) // 4
        end = 4 * count
        carry = b"\n".join(lines[end:])
        if count == 0:
            return carry
        first_line = self._line_offset + 1
        titles = lines[0:end:4]
        sequences = lines[1:end:4]
        separators = lines[2:end:4]
        qualities = lines[3:end:4]
        del lines

        framing = _framing_failure(buffer, len(buffer) - len(carry), titles, separators)
        if framing is not None:
            stop_line, stop_code, stop_message = framing
            count = stop_line // 4
            titles = titles[:count]
            sequences = sequences[:count]
            separators = separators[:count]
            qualities = qualities[:count]

        if count:
            lengths = list(map(len, sequences))
            self._check_records(titles, sequences, separators, qualities, lengths)
            self._count_records(titles, lengths)
        self._line_offset += 4 * count
        if framing is not None:
            self._stop(first_line + stop_line, stop_code, stop_message)
        return carry

    def _check_records(
        self,
        titles: list[bytes],
        sequences: list[bytes],
        separators: list[bytes],
        qualities: list[bytes],
        lengths: list[int],
    ) -> None:
        # Each check runs over the whole chunk first; records are visited only if it fails.
        found: list[tuple[int, FastqErrorCode, int]] = []
        if len(max(separators)) > 1:
            found.extend(
                (4 * i + 2, FastqErrorCode.PLUS_NAME_MISMATCH, i)
                for i, (title, separator) in enumerate(zip(titles, separators, strict=True))
                if len(separator) > 1 and separator[1:] != title[1:]
            )
        if 0 in lengths:
            found.extend(
                (4 * i + 1, FastqErrorCode.EMPTY_READ, i)
                for i, length in enumerate(lengths)
                if length == 0
            )
        if b"".join(sequences).translate(None, _SEQUENCE_LETTERS):
            found.extend(
                (4 * i + 1, FastqErrorCode.BAD_SEQUENCE, i)
                for i, sequence in enumerate(sequences)
                if sequence.translate(None, _SEQUENCE_LETTERS)
            )
        quality_lengths = list(map(len, qualities))
        if quality_lengths != lengths:
            found.extend(
                (4 * i + 3, FastqErrorCode.LENGTH_MISMATCH, i)
                for i, (bases, scores) in enumerate(zip(lengths, quality_lengths, strict=True))
                if bases != scores
            )
        if b"".join(qualities).translate(None, _QUALITY_CHARACTERS):
            found.extend(
                (4 * i + 3, FastqErrorCode.BAD_QUALITY, i)
                for i, quality in enumerate(qualities)
                if quality.translate(None, _QUALITY_CHARACTERS)
            )
        if not found:
            return
        found.sort(key=lambda item: (item[0], _CODE_ORDER[item[1]]))
        room = max(self._max_errors - len(self._errors), 0)
        for line, code, i in found[:room]:
            self._errors.append(
                FastqIssue(
                    line=self._line_offset + line + 1,
                    code=code,
                    message=self._describe(code, sequences[i], qualities[i]),
                )
            )
        self._error_count += len(found)

    @staticmethod
    def _describe(code: FastqErrorCode, sequence: bytes, quality: bytes) -> str:
        if code is FastqErrorCode.PLUS_NAME_MISMATCH:
            return "the '+' line repeats a different title than the record's '@' line"
        if code is FastqErrorCode.EMPTY_READ:
            return "the read has no bases"
        if code is FastqErrorCode.BAD_SEQUENCE:
            byte, column = _first_bad(sequence, _SEQUENCE_LETTERS)
            return (
                f"sequence contains {_show(byte)} at position {column}; "
                "allowed are the IUPAC nucleotide letters ACGTURYSWKMBDHVN in either case"
            )
        if code is FastqErrorCode.LENGTH_MISMATCH:
            return (
                f"quality has {len(quality)} characters but the sequence has {len(sequence)} bases"
            )
        byte, column = _first_bad(quality, _QUALITY_CHARACTERS)
        return f"quality contains {_show(byte)} at position {column}; allowed are '!' to '~'"

    def _count_records(self, titles: list[bytes], lengths: list[int]) -> None:
        self._read_count += len(lengths)
        self._base_count += sum(lengths)
        shortest, longest = min(lengths), max(lengths)
        if self._min_length is None or shortest < self._min_length:
            self._min_length = shortest
        if self._max_length is None or longest > self._max_length:
            self._max_length = longest

        # Names keep their '@' (every one has it, so the digest is no less specific).
        parts = [title.partition(b" ")[0] for title in titles]
        parts.append(b"")
        names = b"\n".join(parts)
        if b"\t" in names:
            names = b"\n".join([name.partition(b"\t")[0] for name in names.split(b"\n")])
        if b"/1\n" in names:
            names = names.replace(b"/1\n", b"\n")
        if b"/2\n" in names:
            names = names.replace(b"/2\n", b"\n")
        self._names.update(names)

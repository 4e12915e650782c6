"""The sample checklist: one rule set for samples sent as JSON and for sample-sheet rows.

The fields, their sheet headers, aliases, types and vocabularies are data (``FIELDS``), served as
they are by ``GET /api/v1/sample-sheets/checklist`` through :func:`checklist_fields`. A whole
sample is checked with :func:`validate_sample`, which never raises and collects every error and
warning with a stable :class:`ChecklistCode`; one field is checked with :func:`normalise_field`,
which raises :class:`ChecklistError`, and :func:`pydantic_check` wraps it for a Pydantic
``field_validator`` so a JSON sample is refused with the same codes a sheet row gets. Values are
kept as the user wrote them, trimmed (line endings become ``\\n``); only the sex vocabulary and
known organism names are normalised, and every normalisation is reported as a ``NORMALISED``
warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import repeat
from typing import Any, NamedTuple, cast

from pydantic_core import PydanticCustomError

from src.study.constants import ChecklistCode

MAX_TEXT_LENGTH = 1024
MAX_SAMPLE_ID_LENGTH = 64
SAMPLE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

SEX_VALUES = (
    "female",
    "male",
    "mixed",
    "hermaphrodite",
    "unknown",
    "not applicable",
    "not collected",
)
# Keys are compared after lower-casing and turning "_" and "-" into spaces.
_SEX_ALIASES: dict[str, str] = {
    **{value: value for value in SEX_VALUES},
    "f": "female",
    "fem": "female",
    "m": "male",
    "mix": "mixed",
    "pooled": "mixed",
    "both": "mixed",
    "herm": "hermaphrodite",
    "hermaphroditic": "hermaphrodite",
    "u": "unknown",
    "unk": "unknown",
    "na": "not applicable",
    "n/a": "not applicable",
    "n.a.": "not applicable",
    "not provided": "not collected",
    "nc": "not collected",
}

# Common model organisms: the scientific name in canonical case. Common names are normalised too
# (reported), so a dashboard's breakdown by organism does not split "mouse" from "Mus musculus".
_ORGANISMS: dict[str, tuple[str, ...]] = {
    "Homo sapiens": ("human", "h. sapiens", "h sapiens"),
    "Mus musculus": ("mouse", "m. musculus", "m musculus", "house mouse"),
    "Rattus norvegicus": ("rat", "r. norvegicus", "brown rat", "norway rat"),
    "Danio rerio": ("zebrafish", "d. rerio", "zebra fish"),
    "Drosophila melanogaster": ("fly", "fruit fly", "fruitfly", "d. melanogaster"),
    "Caenorhabditis elegans": ("worm", "nematode", "c. elegans", "c elegans"),
    "Saccharomyces cerevisiae": ("yeast", "baker's yeast", "budding yeast", "s. cerevisiae"),
    "Schizosaccharomyces pombe": ("fission yeast", "s. pombe"),
    "Arabidopsis thaliana": ("arabidopsis", "thale cress", "a. thaliana"),
    "Escherichia coli": ("e. coli", "e.coli", "e coli"),
}
_ORGANISM_LOOKUP: dict[str, str] = {}
for _name, _aliases in _ORGANISMS.items():
    for _alias in (_name, *_aliases):
        _ORGANISM_LOOKUP[" ".join(_alias.casefold().split())] = _name

_ISO_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DAY_FIRST_OR_MONTH_FIRST = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})")
_YEAR_FIRST = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_POSITIVE_INTEGER = re.compile(r"\+?[0-9]+")
# C0 and C1 control characters except tab and newline (carriage returns are turned into newlines),
# lone surrogates (a JSON "\\ud800" escape) and U+FFFE/U+FFFF, which no sheet format can store.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class FieldType:
    """The ``type`` each checklist field declares."""

    IDENTIFIER = "identifier"
    TEXT = "text"
    ORGANISM = "organism"
    VOCABULARY = "vocabulary"
    DATE = "date"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class ChecklistField:
    """One field of the checklist, as data."""

    name: str
    header: str
    aliases: tuple[str, ...]
    required: bool
    type: str
    description: str
    example: str
    allowed_values: tuple[str, ...] | None = None
    max_length: int = MAX_TEXT_LENGTH

    def as_dict(self) -> dict[str, Any]:
        """The field as served by the checklist endpoint."""
        return {
            "name": self.name,
            "header": self.header,
            "aliases": list(self.aliases),
            "required": self.required,
            "type": self.type,
            "allowed_values": list(self.allowed_values) if self.allowed_values else None,
            "max_length": self.max_length,
            "description": self.description,
            "example": self.example,
        }


FIELDS: tuple[ChecklistField, ...] = (
    ChecklistField(
        "sample",
        "Sample",
        ("Sample name", "Sample title"),
        False,
        FieldType.TEXT,
        "Display name of the sample; defaults to sample_id.",
        "Liver, mouse 1",
    ),
    ChecklistField(
        "sample_id",
        "Sample_ID",
        ("Sample ID", "SampleID", "Sample identifier", "Sample alias"),
        True,
        FieldType.IDENTIFIER,
        "Identifier of the sample, unique in the study ignoring case: 1-64 characters among "
        "A-Z a-z 0-9 _ . -",
        "LIV_M1",
        max_length=MAX_SAMPLE_ID_LENGTH,
    ),
    ChecklistField(
        "sample_group",
        "SampleGroup",
        ("Sample group", "Group"),
        False,
        FieldType.TEXT,
        "Group or condition the sample belongs to.",
        "control",
    ),
    ChecklistField(
        "sample_project",
        "Sample_Project",
        ("Sample project", "Project"),
        False,
        FieldType.TEXT,
        "Project the sample was prepared for.",
        "Liver atlas",
    ),
    ChecklistField(
        "description",
        "Description",
        ("Sample description",),
        False,
        FieldType.TEXT,
        "Free-text description of the sample.",
        "Left lobe, snap-frozen",
    ),
    ChecklistField(
        "organism",
        "Organism",
        ("Species", "Scientific name"),
        True,
        FieldType.ORGANISM,
        "Scientific name of the organism; known names and common names (human, mouse, rat, "
        "zebrafish, fly, worm, yeast, arabidopsis, E. coli) are normalised to the canonical "
        "scientific name, other names are kept as written.",
        "Mus musculus",
        allowed_values=tuple(_ORGANISMS),
    ),
    ChecklistField(
        "tissue",
        "Tissue",
        ("Tissue type", "Organism part"),
        False,
        FieldType.TEXT,
        "Tissue or organ the sample was taken from.",
        "liver",
    ),
    ChecklistField(
        "sex",
        "Sex",
        ("Gender",),
        False,
        FieldType.VOCABULARY,
        "Sex of the organism; aliases such as F, M, Female, MALE, na are normalised.",
        "female",
        allowed_values=SEX_VALUES,
    ),
    ChecklistField(
        "cell_line",
        "Cell_Line",
        ("Cell line name",),
        False,
        FieldType.TEXT,
        "Cell line, if the sample is one.",
        "",
    ),
    ChecklistField(
        "mouse_model",
        "Mouse_Model",
        ("Mouse strain",),
        False,
        FieldType.TEXT,
        "Mouse model or strain.",
        "C57BL/6J",
    ),
    ChecklistField(
        "biomaterial_provider",
        "Biomaterial_Provider",
        ("Provider",),
        False,
        FieldType.TEXT,
        "Lab or company that provided the biological material.",
        "Charles River",
    ),
    ChecklistField(
        "date_sample_prep",
        "Date_Sample_Prep",
        ("Sample prep date", "Date of sample preparation", "Prep date"),
        False,
        FieldType.DATE,
        "Date the sample was prepared: YYYY-MM-DD, YYYY-MM or YYYY; not in the future. Forms "
        "such as 03/04/2022 are refused as ambiguous.",
        "2024-03-15",
    ),
    ChecklistField(
        "biological_repeat",
        "Biological_Repeat",
        ("Biological replicate", "Replicate", "Bio rep"),
        False,
        FieldType.INTEGER,
        "Biological replicate number: a positive integer.",
        "1",
    ),
)
FIELDS_BY_NAME: dict[str, ChecklistField] = {f.name: f for f in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
SHEET_HEADERS: tuple[str, ...] = tuple(f.header for f in FIELDS)
# In check_resolved's cells: an attribute the caller named as such (no UNKNOWN_COLUMN warning).
EXPLICIT_ATTRIBUTE = "attributes"


def header_key(header: str) -> str:
    """A header as compared: case-folded, without spaces, ``_`` and ``-``."""
    return "".join(ch for ch in header.casefold() if ch not in " _-\t")


_HEADER_LOOKUP: dict[str, str] = {}
for _field in FIELDS:
    for _spelling in (_field.name, _field.header, *_field.aliases):
        _key = header_key(_spelling)
        if _HEADER_LOOKUP.get(_key, _field.name) != _field.name:
            raise RuntimeError(f"checklist alias {_spelling!r} is ambiguous")
        _HEADER_LOOKUP[_key] = _field.name


def match_header(header: str) -> str | None:
    """The checklist field a header names (``Sample_ID``, ``sample id``, ``SampleID``), or None."""
    return _HEADER_LOOKUP.get(header_key(header))


def checklist_fields() -> list[dict[str, Any]]:
    """The checklist as JSON-able data, for ``GET /api/v1/sample-sheets/checklist``."""
    return [f.as_dict() for f in FIELDS]


def example_sample() -> dict[str, str]:
    """One valid sample, by API field name (the template's example row)."""
    return {f.name: f.example for f in FIELDS if f.example}


class ChecklistError(ValueError):
    """One field's value breaks a checklist rule."""

    def __init__(self, code: ChecklistCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Issue:
    """An error or warning about one field: the field or column as the user named it."""

    field: str
    code: str
    message: str
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "field": self.field,
            "code": self.code,
            "message": self.message,
            "value": self.value,
        }


@dataclass(slots=True)
class SampleCheck:
    """The result of :func:`validate_sample`.

    ``values`` holds every checklist field by API name (None when absent or invalid;
    ``biological_repeat`` as an int), ``attributes`` the unknown fields as strings.
    """

    values: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when there is no error (warnings are allowed)."""
        return not self.errors


class SampleIds:
    """The sample_ids seen so far in one batch, where each must be unique ignoring case."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def earlier_use(self, sample_id: str, position: int) -> int | None:
        """Where ``sample_id`` was first used, if before ``position``; else record it here."""
        first = self._first.setdefault(sample_id.casefold(), position)
        return None if first == position else first


def _short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_text(value: object) -> str | None:
    """A raw value as trimmed text, or None when blank. Raises ChecklistError for lists, dicts.

    Whole floats lose their ``.0`` (a spreadsheet's 3.0 is 3); dates become ISO strings.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        raise ChecklistError(ChecklistCode.INVALID_TYPE, "expected text, got true/false")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, datetime):
        text = value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        raise ChecklistError(ChecklistCode.INVALID_TYPE, "expected text, got a nested value")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.strip()
    return text or None


def _check_text(text: str, limit: int = MAX_TEXT_LENGTH) -> None:
    if len(text) > limit:
        raise ChecklistError(
            ChecklistCode.TOO_LONG,
            f"the value has {len(text)} characters; at most {limit} are allowed",
        )
    if _CONTROL.search(text):
        raise ChecklistError(
            ChecklistCode.CONTROL_CHARACTER, "the value contains a control character"
        )


def _tomorrow_utc() -> date:
    """The latest date a sample may carry: tomorrow in UTC, a day of slack because a user east
    of UTC may already be on tomorrow's date."""
    return datetime.now(UTC).date() + timedelta(days=1)


def _parse_date(text: str, today: date) -> str:
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        ambiguous = _DAY_FIRST_OR_MONTH_FIRST.fullmatch(text)
        if ambiguous:
            first, second = int(ambiguous[1]), int(ambiguous[2])
            if first <= 12 and second <= 12 and first != second:
                raise ChecklistError(
                    ChecklistCode.AMBIGUOUS_DATE,
                    f"{text!r} could be day/month or month/day; write it as YYYY-MM-DD",
                )
        year_first = _YEAR_FIRST.fullmatch(text)
        hint = ""
        if year_first:
            suggestion = f"{year_first[1]}-{int(year_first[2]):02d}-{int(year_first[3]):02d}"
            hint = f" (did you mean {suggestion}?)"
        raise ChecklistError(
            ChecklistCode.INVALID_DATE,
            f"{_short(text)!r} is not a date as YYYY-MM-DD, YYYY-MM or YYYY{hint}",
        )
    year, month, day = int(match[1]), match[2], match[3]
    try:
        first_day = date(year, int(month) if month else 1, int(day) if day else 1)
    except ValueError:
        raise ChecklistError(ChecklistCode.INVALID_DATE, f"{text!r} is not a real date") from None
    if year < 1000:
        raise ChecklistError(ChecklistCode.INVALID_DATE, f"{text!r} is not a plausible year")
    if first_day > today:
        raise ChecklistError(ChecklistCode.DATE_IN_FUTURE, f"{text!r} is in the future")
    return text


def _parse_positive_integer(value: object, text: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif _POSITIVE_INTEGER.fullmatch(text) and len(text) <= 18:
        number = int(text)
    else:
        raise ChecklistError(
            ChecklistCode.INVALID_INTEGER, f"{_short(text)!r} is not a positive whole number"
        )
    if number < 1:
        raise ChecklistError(ChecklistCode.INVALID_INTEGER, f"{number} is not a positive number")
    return number


def normalise_field(
    name: str, value: object, *, today: date | None = None
) -> tuple[Any, Issue | None]:
    """Check and normalise one checklist field (by API name).

    Returns ``(value, warning)``: the value to store (None when blank; an int for
    ``biological_repeat``) and a ``NORMALISED`` warning when it differs from what was written.
    Raises :class:`ChecklistError` when the value breaks a rule (``REQUIRED`` for a blank
    required field). ``today`` is for tests.
    """
    return _normalise(FIELDS_BY_NAME[name], value, today)


def _normalise(spec: ChecklistField, value: object, today: date | None) -> tuple[Any, Issue | None]:
    text = as_text(value)
    if text is None:
        if spec.required:
            raise ChecklistError(ChecklistCode.REQUIRED, "a value is required")
        return None, None
    if spec.type == FieldType.IDENTIFIER:
        if not SAMPLE_ID_PATTERN.fullmatch(text):
            raise ChecklistError(
                ChecklistCode.INVALID_SAMPLE_ID,
                f"{_short(text)!r} must be 1-{MAX_SAMPLE_ID_LENGTH} characters among "
                "A-Z a-z 0-9 _ . -",
            )
        return text, None
    _check_text(text, spec.max_length)
    if spec.type == FieldType.INTEGER:
        return _parse_positive_integer(value, text), None
    if spec.type == FieldType.DATE:
        return _parse_date(text, today or _tomorrow_utc()), None
    if spec.type == FieldType.VOCABULARY:
        canonical = _SEX_ALIASES.get(" ".join(text.casefold().replace("_", " ").split()))
        if canonical is None and "-" in text:
            canonical = _SEX_ALIASES.get(" ".join(text.casefold().replace("-", " ").split()))
        if canonical is None:
            raise ChecklistError(
                ChecklistCode.INVALID_SEX,
                f"{_short(text)!r} is not one of: {', '.join(SEX_VALUES)}",
            )
        return canonical, _normalised(spec, text, canonical)
    if spec.type == FieldType.ORGANISM:
        canonical = _ORGANISM_LOOKUP.get(" ".join(text.casefold().split()))
        if canonical is None:
            return text, None
        return canonical, _normalised(spec, text, canonical)
    return text, None


def _normalised(spec: ChecklistField, text: str, canonical: str) -> Issue | None:
    if text == canonical:
        return None
    return Issue(
        spec.name,
        ChecklistCode.NORMALISED,
        f'{spec.name} "{_short(text)}" -> "{canonical}"',
        text,
    )


def pydantic_check(name: str, value: object) -> Any:
    """:func:`normalise_field` for a Pydantic ``field_validator(mode="before")``.

    Errors become ``PydanticCustomError`` whose type is the checklist code, so the 422 envelope's
    ``errors[].code`` carries ``INVALID_SEX`` and friends. The normalisation warning is dropped;
    call :func:`validate_sample` where warnings must be reported.
    """
    try:
        normalised, _ = normalise_field(name, value)
    except ChecklistError as exc:
        raise PydanticCustomError(str(exc.code), exc.message) from None
    return normalised


def validate_sample(
    raw: Mapping[str, object],
    *,
    today: date | None = None,
    report_unknown: bool = True,
) -> SampleCheck:
    """Check one sample given by API field names or sheet headers (any spelling ``match_header``
    accepts). Unknown keys go to ``attributes`` (with an ``UNKNOWN_COLUMN`` warning unless
    ``report_unknown`` is False); an ``attributes`` key holding a flat mapping is merged in without
    warning. Issues name the field as the key was written. Never raises.
    """
    resolved: list[tuple[str | None, str, object]] = []
    for key, value in raw.items():
        if key == "attributes" and isinstance(value, Mapping):
            resolved.extend((EXPLICIT_ATTRIBUTE, str(k), v) for k, v in value.items())
            continue
        resolved.append((match_header(key), key, value))
    return check_resolved(resolved, today=today, report_unknown=report_unknown)


def check_resolved(
    cells: Iterable[tuple[str | None, str, object]],
    *,
    today: date | None = None,
    report_unknown: bool = True,
) -> SampleCheck:
    """The core of :func:`validate_sample`, for callers that matched headers once already.

    ``cells`` are ``(field name, key as written, value)``; a name of None is an unknown column
    (an attribute, reported) and :data:`EXPLICIT_ATTRIBUTE` an attribute given as such (silent).
    """
    cells = list(cells)
    columns = ResolvedColumns(
        [(name, key) for name, key, _ in cells], today=today, report_unknown=report_unknown
    )
    return columns.check([value for _, _, value in cells])


# Distinct text values remembered per column by ResolvedColumns: enough for any vocabulary,
# organism or date column, and a bound on the memory a column of unique values can take.
_REMEMBERED_VALUES = 4096


class _Column(NamedTuple):
    """One column of :class:`ResolvedColumns`: its kind, the field (or attribute key) it gives,
    how a cell is checked, and the outcomes of the text values checked so far (a cell's checks
    depend on its column and its value alone)."""

    kind: int
    name: str
    judge: Callable[[object], tuple[Any, ...]]
    outcomes: dict[str, tuple[Any, ...]]
    # For a whole column at once (ResolvedColumns.check_rows): its values as kept, when every
    # cell is plain text that the judge would keep as it is with no issue; else None.
    plain: Callable[[Sequence[object]], list[Any] | None] | None = None


_FIELD, _DUPLICATE, _ATTRIBUTE = 0, 1, 2


def _plain_texts(values: Sequence[object], limit: int, blanks: bool) -> list[Any] | None:
    """``values`` as kept when each is text that is already trimmed, at most ``limit``
    characters, without control characters or carriage returns, and not blank unless
    ``blanks`` (a blank is then None): one pass of C-level checks over the column."""
    try:
        joined = "\n".join(values)  # type: ignore[arg-type]  # TypeError: not all text
    except TypeError:
        return None
    if _CONTROL.search(joined) is not None:  # also finds "\r", which the judges rewrite
        return None
    texts = cast("list[str]", list(values))
    if texts != list(map(str.strip, texts)) or max(map(len, texts), default=0) > limit:
        return None
    if not all(texts):
        if not blanks:
            return None
        return [text or None for text in texts]
    return texts


def _plain_identifiers(values: Sequence[object]) -> list[Any] | None:
    """``values`` as kept when each is a well-formed sample_id."""
    if not all(type(value) is str for value in values):
        return None
    texts: list[str] = list(values)  # type: ignore[arg-type]
    if not all(map(SAMPLE_ID_PATTERN.fullmatch, texts)):
        return None
    return texts


class ResolvedColumns:
    """:func:`check_resolved` for many rows with the same columns, e.g. a sheet's: what only
    depends on the columns (duplicates, missing required fields, today's date) is worked out
    once, and a text value seen before in a column is not checked again. Each row gets the same
    values, errors and warnings, in the same order, as :func:`check_resolved` gives it.

    ``columns`` are ``(field name, key as written)`` as in :func:`check_resolved`; :meth:`check`
    takes one row's values in that order.
    """

    def __init__(
        self,
        columns: Sequence[tuple[str | None, str]],
        *,
        today: date | None = None,
        report_unknown: bool = True,
    ) -> None:
        when = today or _tomorrow_utc()
        seen: dict[str, str] = {}
        self._columns: list[_Column] = []
        for name, key in columns:
            judge: Callable[[object], tuple[Any, ...]]
            plain: Callable[[Sequence[object]], list[Any] | None] | None = None
            if name is None or name == EXPLICIT_ATTRIBUTE:
                reported = report_unknown and name is None
                judge = partial(_judge_attribute, key, reported)
                attribute = key.strip()
                if not reported and attribute and _judge_attribute(key, False, None)[3] is None:
                    plain = partial(_plain_texts, limit=MAX_TEXT_LENGTH, blanks=True)
                self._columns.append(_Column(_ATTRIBUTE, key, judge, {}, plain))
            elif name in seen:
                judge = partial(_judge_duplicate, key, seen[name], name)
                self._columns.append(_Column(_DUPLICATE, name, judge, {}))
            else:
                seen[name] = key
                spec = FIELDS_BY_NAME[name]
                judge = partial(_JUDGES.get(spec.type, _judge_field), spec, key, when)
                if spec.type == FieldType.TEXT:
                    plain = partial(_plain_texts, limit=spec.max_length, blanks=not spec.required)
                elif spec.type == FieldType.IDENTIFIER:
                    plain = _plain_identifiers
                self._columns.append(_Column(_FIELD, name, judge, {}, plain))
        self._missing = [
            Issue(spec.name, ChecklistCode.REQUIRED, f"{spec.name}: a value is required")
            for spec in FIELDS
            if spec.required and spec.name not in seen
        ]
        self._blank: dict[str, Any] = dict.fromkeys(FIELD_NAMES)

    def check(self, values: Sequence[object]) -> SampleCheck:
        """One row's values (in the columns' order) against the checklist."""
        fields = self._blank.copy()
        attributes: dict[str, str] = {}
        errors: list[Issue] = []
        warnings: list[Issue] = []
        for (kind, name, judge, outcomes, _), value in zip(self._columns, values, strict=True):
            outcome = outcomes.get(value) if type(value) is str else None
            if outcome is None:
                outcome = _judged(judge, outcomes, value)
            if kind != _FIELD:
                _add_other(kind, outcome, attributes, errors, warnings)
                continue
            normalised, warning, error = outcome
            if error is not None:
                errors.append(error)
                continue
            fields[name] = normalised
            if warning is not None:
                warnings.append(warning)
        if self._missing:
            errors.extend(self._missing)
        if fields["sample"] is None:
            fields["sample"] = fields["sample_id"]
        return SampleCheck(fields, attributes, errors, warnings)

    def check_rows(self, rows: Sequence[Sequence[object]]) -> list[SampleCheck]:
        """:meth:`check` of many rows: each row's SampleCheck is the one :meth:`check` gives it
        (same values, same issues in the same order), worked out by :meth:`check_columns`."""
        checked = self.check_columns(rows)
        errors, warnings = checked.errors, checked.warnings
        return [
            SampleCheck(values, attributes, errors.get(index, []), warnings.get(index, []))
            for index, (values, attributes) in enumerate(
                zip(checked.values, checked.attributes, strict=True)
            )
        ]

    def check_columns(
        self, rows: Sequence[Sequence[object]], *, attributes_key: str | None = None
    ) -> CheckedRows:
        """Many rows checked column by column: a column whose cells are all plain text is
        taken as it is in one pass of C-level checks (sample_id, free text and attributes:
        mostly distinct values), other columns' cells are looked up among the outcomes seen
        before, and only the rows with an issue get per-row work for it. With
        ``attributes_key``, each row's values also hold its attributes under that key (last),
        e.g. the report's shape of a sample."""
        width = len(self._columns)
        if any(len(row) != width for row in rows):
            raise ValueError("every row needs one value per column")
        count = len(rows)
        by_column: list[Sequence[object]] = list(zip(*rows, strict=True)) if count else []
        issues = _RowIssues()
        fields: dict[str, Sequence[Any]] = {}
        attributes: list[tuple[str, Sequence[Any]]] = []
        for column, values in zip(self._columns, by_column, strict=False):
            kept = column.plain(values) if column.plain is not None else None
            if kept is None:
                kept = _judge_column(column, values, issues)
            if column.kind == _FIELD:
                fields[column.name] = kept
            elif column.kind == _ATTRIBUTE:
                attributes.append((column.name.strip(), kept))
        if self._missing:
            for index in range(count):
                issues.errors[index] = [*issues.errors.get(index, ()), *self._missing]
        return self._assemble(count, fields, attributes, issues, attributes_key)

    def _assemble(
        self,
        count: int,
        fields: dict[str, Sequence[Any]],
        attributes: list[tuple[str, Sequence[Any]]],
        issues: _RowIssues,
        attributes_key: str | None,
    ) -> CheckedRows:
        """The rows from their columns' kept values and their issues."""
        ids: Sequence[Any] = fields.get("sample_id", [None] * count)
        names = fields.get("sample")
        if names is None:
            fields["sample"] = ids
        elif None in names:
            fields["sample"] = [n if n is not None else i for n, i in zip(names, ids, strict=True)]
        keys = [key for key, _ in attributes]
        texts_of_rows = zip(*(texts for _, texts in attributes), strict=True)
        attributes_of_rows: list[dict[str, str]] = (
            [
                {key: text for key, text in zip(keys, texts, strict=True) if text is not None}
                for texts in texts_of_rows
            ]
            if attributes
            else [{} for _ in range(count)]
        )
        columns = [fields.get(name, repeat(None)) for name in FIELD_NAMES]
        names_of_values: tuple[str, ...] = FIELD_NAMES
        if attributes_key is not None:
            columns.append(attributes_of_rows)
            names_of_values = (*FIELD_NAMES, attributes_key)
        # "sample" is always a list, so the rows end with the sheet's.
        values_of_rows: list[dict[str, Any]] = list(
            map(dict, map(zip, repeat(names_of_values), zip(*columns, strict=False)))
        )
        return CheckedRows(values_of_rows, attributes_of_rows, issues.errors, issues.warnings)


class CheckedRows(NamedTuple):
    """Rows checked at once by :meth:`ResolvedColumns.check_columns`: each row's values and
    attributes (by row index, from 0), and the errors and warnings of the rows that have any."""

    values: list[dict[str, Any]]
    attributes: list[dict[str, str]]
    errors: dict[int, list[Issue]]
    warnings: dict[int, list[Issue]]


class _RowIssues:
    """The errors and warnings of the rows that have any, by row index (0-based)."""

    def __init__(self) -> None:
        self.errors: dict[int, list[Issue]] = {}
        self.warnings: dict[int, list[Issue]] = {}

    def error(self, index: int, issue: Issue) -> None:
        self.errors.setdefault(index, []).append(issue)

    def warning(self, index: int, issue: Issue) -> None:
        self.warnings.setdefault(index, []).append(issue)


def _judge_column(column: _Column, values: Sequence[object], issues: _RowIssues) -> list[Any]:
    """A column's values as kept (a field's normalised values; an attribute's texts, None for
    blank; nothing for a second column of a field), its cells' issues added to ``issues``."""
    outcomes = _column_outcomes(column, values)
    kept: list[Any] = []
    if column.kind == _DUPLICATE:
        for index, (error,) in enumerate(outcomes):
            issues.error(index, error)
    elif column.kind == _FIELD:
        kept = [outcome[0] for outcome in outcomes]
        for index, (_, warning, error) in enumerate(outcomes):
            if error is not None:
                issues.error(index, error)
            elif warning is not None:
                issues.warning(index, warning)
    else:
        kept = [None] * len(outcomes)
        for index, (_, text, warning, error) in enumerate(outcomes):
            if error is not None:
                issues.error(index, error)
            elif text is not None:
                kept[index] = text
                if warning is not None:
                    issues.warning(index, warning)
    return kept


def _column_outcomes(column: _Column, values: Sequence[object]) -> list[tuple[Any, ...]]:
    """Every cell's outcome in a column, judged once per distinct text value."""
    outcomes = column.outcomes
    try:
        found: list[Any] = list(map(outcomes.get, values))  # type: ignore[arg-type]
    except TypeError:  # an unhashable cell (a JSON list): judged one by one
        found = [outcomes.get(v) if type(v) is str else None for v in values]
    if None in found:
        for index, outcome in enumerate(found):
            if outcome is None:
                value = values[index]
                # Judged since the lookup above, further up this column?
                again = outcomes.get(value) if type(value) is str else None
                found[index] = again or _judged(column.judge, outcomes, value)
    return found


def _judged(
    judge: Callable[[object], tuple[Any, ...]], outcomes: dict[str, tuple[Any, ...]], value: object
) -> tuple[Any, ...]:
    """A cell's outcome, remembered for its column when the value is text."""
    outcome = judge(value)
    if type(value) is str and len(outcomes) < _REMEMBERED_VALUES:
        outcomes[value] = outcome
    return outcome


def _add_other(
    kind: int,
    outcome: tuple[Any, ...],
    attributes: dict[str, str],
    errors: list[Issue],
    warnings: list[Issue],
) -> None:
    """Add the outcome of an attribute cell, or of a cell in a second column of a field."""
    if kind == _DUPLICATE:
        errors.append(outcome[0])
        return
    key, text, warning, error = outcome
    if error is not None:
        errors.append(error)
    elif text is not None:
        attributes[key] = text
        if warning is not None:
            warnings.append(warning)


def _judge_field(
    spec: ChecklistField, key: str, today: date, value: object
) -> tuple[Any, Issue | None, Issue | None]:
    """``(normalised value, warning, error)`` of one cell of a checklist field."""
    try:
        normalised, warning = _normalise(spec, value, today)
    except ChecklistError as exc:
        return None, None, Issue(key, exc.code, f"{key}: {exc.message}", _value_text(value))
    if warning is None:
        return normalised, None, None
    message = f'{key} "{warning.value}" -> "{normalised}"'
    return normalised, Issue(key, warning.code, message, warning.value), None


def _judge_text(
    spec: ChecklistField, key: str, today: date, value: object
) -> tuple[Any, Issue | None, Issue | None]:
    """:func:`_judge_field` of a free-text field, accepting plain text without the general
    path: a string with no carriage return, not blank once trimmed, short enough and without
    control characters is kept trimmed. Anything else takes the general path."""
    if type(value) is str and "\r" not in value:
        text = value.strip()
        if text and len(text) <= spec.max_length and _CONTROL.search(text) is None:
            return text, None, None
    return _judge_field(spec, key, today, value)


def _judge_identifier(
    spec: ChecklistField, key: str, today: date, value: object
) -> tuple[Any, Issue | None, Issue | None]:
    """:func:`_judge_field` of sample_id, accepting a well-formed identifier directly."""
    if type(value) is str and "\r" not in value:
        text = value.strip()
        if SAMPLE_ID_PATTERN.fullmatch(text):
            return text, None, None
    return _judge_field(spec, key, today, value)


_JUDGES = {FieldType.TEXT: _judge_text, FieldType.IDENTIFIER: _judge_identifier}


def _judge_duplicate(key: str, first: str, name: str, value: object) -> tuple[Issue]:
    """The error of a cell in a second column giving a field."""
    return (
        Issue(
            key,
            ChecklistCode.DUPLICATE_FIELD,
            f"{key!r} and {first!r} both give {name}",
            _short(value) if value is not None else None,
        ),
    )


def _value_text(value: object) -> str | None:
    if value is None:
        return None
    return _short(value if isinstance(value, str) else str(value))


def _judge_attribute(
    key: str, report: bool, value: object
) -> tuple[str, str | None, Issue | None, Issue | None]:
    """``(attribute name, text, warning, error)`` of one cell of an attribute column; the text
    is None when the cell is blank (nothing is kept)."""
    name = key.strip()
    try:
        _check_text(name)  # the name is stored too
        text = as_text(value)
        if text is not None:
            _check_text(text)
    except ChecklistError as exc:
        code = (
            ChecklistCode.INVALID_ATTRIBUTES if exc.code == ChecklistCode.INVALID_TYPE else exc.code
        )
        return name, None, None, Issue(key, code, f"{key}: {exc.message}", _value_text(value))
    if not name:
        if text is not None:
            error = Issue(key, ChecklistCode.INVALID_ATTRIBUTES, "an attribute has no name", text)
            return name, None, None, error
        return name, None, None, None
    if text is None or not report:
        return name, text, None, None
    warning = Issue(
        key,
        ChecklistCode.UNKNOWN_COLUMN,
        f"{key!r} is not a checklist field; kept as an attribute",
    )
    return name, text, warning, None

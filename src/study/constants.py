"""Stable codes and fixed strings of the study module."""

from enum import StrEnum


class ChecklistCode(StrEnum):
    """Codes of the sample checklist's per-field errors and warnings (JSON samples and sheets)."""

    REQUIRED = "REQUIRED"
    INVALID_TYPE = "INVALID_TYPE"
    INVALID_SAMPLE_ID = "INVALID_SAMPLE_ID"
    INVALID_SEX = "INVALID_SEX"
    INVALID_DATE = "INVALID_DATE"
    AMBIGUOUS_DATE = "AMBIGUOUS_DATE"
    DATE_IN_FUTURE = "DATE_IN_FUTURE"
    INVALID_INTEGER = "INVALID_INTEGER"
    TOO_LONG = "TOO_LONG"
    CONTROL_CHARACTER = "CONTROL_CHARACTER"
    DUPLICATE_FIELD = "DUPLICATE_FIELD"
    INVALID_ATTRIBUTES = "INVALID_ATTRIBUTES"
    # Across the samples of one batch (a JSON list or a sheet).
    DUPLICATE_SAMPLE_ID = "DUPLICATE_SAMPLE_ID"
    # Warnings.
    NORMALISED = "NORMALISED"
    UNKNOWN_COLUMN = "UNKNOWN_COLUMN"


class StudyStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"


class MemberRole(StrEnum):
    EDITOR = "editor"
    VIEWER = "viewer"


class AccessRole(StrEnum):
    """How the caller relates to a study: the ``my_role`` field of a Study."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    PUBLIC = "public"


class ReadKind(StrEnum):
    SINGLE = "single"
    R1 = "R1"
    R2 = "R2"


class FileStatus(StrEnum):
    UPLOADING = "uploading"
    VALID = "valid"
    INVALID = "invalid"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"


class EventAction(StrEnum):
    """The ``action`` of a study_event: one per change or transition."""

    STUDY_CREATED = "study.created"
    STUDY_UPDATED = "study.updated"
    STUDY_SUBMITTED = "study.submitted"
    STUDY_WITHDRAWN = "study.withdrawn"
    STUDY_APPROVED = "study.approved"
    STUDY_CHANGES_REQUESTED = "study.changes_requested"
    STUDY_PUBLISHED = "study.published"
    MEMBER_SET = "member.set"
    MEMBER_REMOVED = "member.removed"
    SAMPLE_CREATED = "sample.created"
    SAMPLE_UPDATED = "sample.updated"
    SAMPLE_DELETED = "sample.deleted"
    SHEET_IMPORTED = "sheet.imported"
    FILE_ADDED = "file.added"
    FILE_DELETED = "file.deleted"


class StudyErrorCode(StrEnum):
    STUDY_NOT_FOUND = "STUDY_NOT_FOUND"
    STUDY_LOCKED = "STUDY_LOCKED"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    STUDY_INCOMPLETE = "STUDY_INCOMPLETE"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    COMMENT_REQUIRED = "COMMENT_REQUIRED"
    SAMPLE_NOT_FOUND = "SAMPLE_NOT_FOUND"
    SAMPLE_ID_TAKEN = "SAMPLE_ID_TAKEN"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    OWNER_NOT_MEMBER = "OWNER_NOT_MEMBER"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INVALID_SAMPLE = "INVALID_SAMPLE"


class ReadinessCode(StrEnum):
    """Problems that keep a study from being submitted (readiness and STUDY_INCOMPLETE)."""

    NO_SAMPLES = "NO_SAMPLES"
    NO_VALID_FILE = "NO_VALID_FILE"
    FILE_UPLOADING = "FILE_UPLOADING"
    FILE_INVALID = "FILE_INVALID"
    UNPAIRED_READ = "UNPAIRED_READ"
    PAIR_READ_COUNT_MISMATCH = "PAIR_READ_COUNT_MISMATCH"
    PAIR_READ_NAMES_MISMATCH = "PAIR_READ_NAMES_MISMATCH"
    MIXED_LAYOUT = "MIXED_LAYOUT"


ACCESSION_COUNTER = "study"
# The study_total row holding how many studies were ever published (none is unpublished or
# deleted after): the public total is that minus the published ones still under embargo.
PUBLISHED_TOTAL = "published"
# The counts kept on each study row and summed per owner (study/counters.py).
COUNTER_COLUMNS: tuple[str, ...] = (
    "sample_count",
    "file_count",
    "total_bytes",
    "valid_file_count",
    "invalid_file_count",
    "valid_bytes",
    "valid_read_count",
    "valid_base_count",
)
# An owner's number of studies in each status, columns of owner_total (study/counters.py).
OWNER_STATUS_COLUMNS: dict[StudyStatus, str] = {
    StudyStatus.DRAFT: "draft_count",
    StudyStatus.IN_REVIEW: "in_review_count",
    StudyStatus.PUBLISHED: "published_count",
}
OWNER_COLUMNS: tuple[str, ...] = (*OWNER_STATUS_COLUMNS.values(), *COUNTER_COLUMNS)


# The orders of a study list (``?sort=``); no docstring, which would enter the API document.
class StudySort(StrEnum):
    NEWEST = "-created_at"
    OLDEST = "created_at"
    RECENTLY_UPDATED = "-updated_at"
    TITLE = "title"

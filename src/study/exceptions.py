"""Refusals of the study module."""

from __future__ import annotations

from src.exceptions import AppError
from src.study.constants import StudyErrorCode
from src.study.schemas import ReadinessProblem, SampleIssue


class StudyNotFoundError(AppError):
    status_code = 404
    code = StudyErrorCode.STUDY_NOT_FOUND
    message = "No such study."
    description = "No such study (or not visible to you)"


class ForbiddenError(AppError):
    status_code = 403
    code = StudyErrorCode.FORBIDDEN
    message = "Your role on this study does not allow this."
    description = "Your role does not allow this"


class StudyLockedError(AppError):
    status_code = 409
    code = StudyErrorCode.STUDY_LOCKED
    message = "Only draft studies can be changed."
    description = "The study's state does not allow this"


class PreconditionFailedError(AppError):
    status_code = 412
    code = StudyErrorCode.PRECONDITION_FAILED
    message = "The study has changed since you read it (If-Match does not match its ETag)."


class StudyIncompleteError(AppError):
    status_code = 409
    code = StudyErrorCode.STUDY_INCOMPLETE
    message = "The study is not ready to be submitted; see errors."
    item = ReadinessProblem
    description = "The study's state does not allow this"


class InvalidTransitionError(AppError):
    status_code = 409
    code = StudyErrorCode.INVALID_TRANSITION
    message = "The study is not in a state that allows this."
    description = "The study's state does not allow this"


class CommentRequiredError(AppError):
    status_code = 422
    code = StudyErrorCode.COMMENT_REQUIRED
    message = "A comment is required when requesting changes."


class SampleNotFoundError(AppError):
    status_code = 404
    code = StudyErrorCode.SAMPLE_NOT_FOUND
    message = "No such sample in this study."


class SampleIdTakenError(AppError):
    status_code = 409
    code = StudyErrorCode.SAMPLE_ID_TAKEN
    message = "A sample with this sample_id (ignoring case) already exists in the study."


class InvalidSampleError(AppError):
    status_code = 422
    code = StudyErrorCode.INVALID_SAMPLE
    message = "The sample does not pass the checklist; see errors."
    item = SampleIssue


class UserNotFoundError(AppError):
    status_code = 404
    code = StudyErrorCode.USER_NOT_FOUND
    message = "No user with this email."


class OwnerNotMemberError(AppError):
    status_code = 409
    code = StudyErrorCode.OWNER_NOT_MEMBER
    message = "The owner of a study cannot be added as a member."
    description = "OWNER_NOT_MEMBER: the owner cannot be made a member"


class MemberNotFoundError(AppError):
    status_code = 404
    code = StudyErrorCode.MEMBER_NOT_FOUND
    message = "This user is not a member of the study."

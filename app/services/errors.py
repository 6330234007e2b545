from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a service raises; views map them to form errors or JSON errors."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class ValidationFailed(ServiceError):
    status = 422
    code = "validation_failed"

    def __init__(self, errors: dict[str, str]):
        super().__init__("入力内容に誤りがあります。", errors=errors)


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class ConsentRequired(Conflict):
    code = "consent_required"


class SensitiveDataFound(Conflict):
    """Publishing beyond the owner would share details that are neither masked nor kept."""

    code = "sensitive_data"

    def __init__(self, message: str, findings: list[dict]):
        super().__init__(message)
        self.findings = findings

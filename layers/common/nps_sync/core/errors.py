"""Domain errors. nps_sync.web.http maps each to an HTTP status; nothing else does."""


class NpsSyncError(Exception):
    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SignatureError(NpsSyncError):
    """The request is not signed by the provider we expect (or the signature is stale)."""

    code = "invalid_signature"


class NotConfigured(NpsSyncError):
    """The provider has no credentials in the secrets: refuse rather than accept unsigned."""

    code = "provider_not_configured"


class UnknownProvider(NpsSyncError):
    code = "unknown_provider"


class MalformedBody(NpsSyncError):
    """The body cannot be read at all (not UTF-8, not JSON, not XML)."""

    code = "malformed_body"


class InvalidPayload(NpsSyncError):
    """The body parses but does not have the shape or values the provider documents."""

    code = "invalid_payload"


class PayloadTooLarge(NpsSyncError):
    code = "payload_too_large"


class Unauthorized(NpsSyncError):
    code = "unauthorized"


class Forbidden(NpsSyncError):
    """A known token whose scope does not cover the operation (RFC 6750's error code)."""

    code = "insufficient_scope"


class StorageUnavailable(NpsSyncError):
    """Storing failed for a reason that may pass: answer 5xx so the sender retries."""

    code = "storage_unavailable"


class BadRequest(NpsSyncError):
    """A query parameter is missing, malformed or out of range."""

    code = "bad_request"


class NotFound(NpsSyncError):
    code = "not_found"


class Conflict(NpsSyncError):
    """The resource changed under the request (or is in a state that refuses it): retry."""

    code = "conflict"


class BlockedUrl(NpsSyncError):
    """A subscriber URL nps-sync refuses to call: not https, or not a public address."""

    code = "blocked_url"

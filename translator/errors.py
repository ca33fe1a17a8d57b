"""One exception tree; every error knows its HTTP status and its OpenAI body.

::

    TranslatorError                       500 server_error
    ├── InvalidRequestError               400 invalid_request_error
    │   ├── UnsupportedFieldError         400 unsupported_parameter / unsupported_value
    │   ├── FetchRefusedError             400 a remote media URL that may not be fetched
    │   └── NeedsIOError                  400 pure translation cannot proceed without I/O
    ├── AuthenticationError               401 authentication_error
    ├── PermissionDeniedError             403 permission_error
    ├── NotFoundError                     404 not_found_error
    │   └── ModelNotFoundError            404 model_not_found
    ├── PayloadTooLargeError              413 invalid_request_error
    ├── RateLimitError                    429 rate_limit_error
    ├── StoreUnavailableError             503 store_unavailable: sessions or files cannot be reached
    └── UpstreamError                     502 the backend failed us
        ├── UpstreamUnavailableError      502 the backend could not be reached
        ├── UpstreamTimeoutError          504 the backend did not answer in time (a TimeoutError)
        ├── UpstreamStatusError           the backend's own status and message
        └── MalformedUpstreamError        502 the backend's reply could not be understood
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

__all__ = [
    "AuthenticationError",
    "FetchRefusedError",
    "InvalidRequestError",
    "MalformedUpstreamError",
    "ModelNotFoundError",
    "NeedsIOError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "StoreUnavailableError",
    "TranslatorError",
    "UnsupportedFieldError",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


_encoder = msgspec.json.Encoder()


def _utf8(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate written as its escape (``\\udc80``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class TranslatorError(Exception):
    """Base of every error the translator raises on purpose."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retry_after: int | None = None
    """Seconds a client should wait before trying again (``Retry-After``), when known."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        if status is not None:
            self.status = status  # type: ignore[misc]

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str] | None:
        """Headers the error response carries besides the body: a 429 or 503 says
        ``Retry-After`` (:attr:`retry_after`, else 1 second), which the OpenAI SDK honours."""
        if self.status in (429, 503):
            return {"Retry-After": str(self.retry_after or 1)}
        return None

    def to_json(self) -> bytes:
        """The OpenAI error body, encoded."""
        detail = ErrorDetail(self.message, self.error_type, self.param, self.code)
        try:
            return _encoder.encode(ErrorBody(detail))
        except UnicodeEncodeError:  # a lone surrogate quoted from the request (undecodable bytes)
            param, code = (None if v is None else _utf8(v) for v in (self.param, self.code))
            detail = ErrorDetail(_utf8(self.message), self.error_type, param, code)
            return _encoder.encode(ErrorBody(detail))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status}, param={self.param!r})"
        )


class InvalidRequestError(TranslatorError):
    """The request is malformed or asks for something that cannot be done."""

    status = 400
    error_type = "invalid_request_error"


class UnsupportedFieldError(InvalidRequestError):
    """A backend's compatibility matrix rejects a field or one of its values.

    ``field`` is the matrix row that rejected it (None for a field no row names),
    ``backend`` the backend whose matrix it is.
    """

    default_code = "unsupported_parameter"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        field: str | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.field = field
        self.backend = backend


class FetchRefusedError(InvalidRequestError):
    """A remote media URL may not be fetched (scheme, address, size or type)."""

    default_code = "invalid_url"


class NeedsIOError(InvalidRequestError):
    """Pure translation was asked for a request that needs I/O first."""

    default_code = "requires_io"


class AuthenticationError(TranslatorError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(TranslatorError):
    status = 403
    error_type = "permission_error"


class NotFoundError(TranslatorError):
    status = 404
    error_type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    """No route serves the requested model."""

    error_type = "invalid_request_error"
    default_code = "model_not_found"


class PayloadTooLargeError(TranslatorError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimitError(TranslatorError):
    """Too many requests or tokens; ``retry_after`` says in how many seconds to try again."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StoreUnavailableError(TranslatorError):
    """The session or file store did not answer in time (Redis down, a disk gone)."""

    status = 503
    default_code = "store_unavailable"


class UpstreamError(TranslatorError):
    """The backend failed; ``backend`` names it."""

    status = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, status=status)
        self.backend = backend


class UpstreamUnavailableError(UpstreamError):
    default_code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamStatusError(UpstreamError):
    """The backend answered with an error; its status and message are kept."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        backend: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message, backend=backend, param=param, code=code, status=status)
        self.upstream_status = status if upstream_status is None else upstream_status
        """The status the backend answered with (``status`` is what the client is shown)."""
        if error_type is not None:
            self.error_type = error_type  # type: ignore[misc]
        elif status < 500:
            self.error_type = _TYPE_BY_STATUS.get(status, "invalid_request_error")  # type: ignore[misc]


class MalformedUpstreamError(UpstreamError):
    default_code = "upstream_malformed"


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

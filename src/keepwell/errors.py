"""keepwell's one error tree.

Every error keepwell raises on purpose is a :class:`KeepwellError`. Each class has a stable
``code`` (used as the RFC 9457 problem ``type`` by the REST layer), an HTTP ``status``, inherits
the nearest built-in exception too, and its message says what went wrong *and what to do*::

    KeepwellError
    ├── ConfigurationError (ValueError)           invalid-configuration       400
    ├── InvalidNameError (ValueError)             invalid-name                422
    ├── ValidationError (ValueError)              validation-failed           422
    │   ├── PayloadError                          invalid-payload             422
    │   └── ModelInputError                       model-input-error           422
    ├── MalformedBodyError (ValueError)           malformed-body              400
    ├── UnsupportedMediaTypeError (ValueError)    unsupported-media-type      415
    ├── BodyTooLargeError (ValueError)            body-too-large              413
    ├── AuthenticationError (PermissionError)     unauthenticated             401
    ├── ForbiddenError (PermissionError)          forbidden                   403
    ├── NonFinitePredictionError (ArithmeticError) non-finite-prediction      500
    ├── NotFoundError (LookupError)               not-found                   404
    │   ├── ModelNotFoundError                    model-not-found             404
    │   ├── VersionNotFoundError                  version-not-found           404
    │   └── AliasNotFoundError                    alias-not-found             404
    ├── ConflictError                             conflict                    409
    │   ├── AlreadyExistsError                    already-exists              409
    │   └── AliasConflictError                    alias-precondition-failed   412
    ├── InvalidStateError                         invalid-state               409
    ├── UnsafeArtifactError                       unsafe-artifact             422
    ├── ArtifactError (OSError)                   artifact-error              500
    │   ├── ArtifactNotFoundError (FileNotFoundError) artifact-not-found      404
    │   ├── ArtifactPathError (ValueError)        invalid-artifact-path       422
    │   └── ArtifactIntegrityError                artifact-integrity          500
    ├── LogbookError                              logbook-error               503
    │   ├── LogbookUnavailableError (RuntimeError) logbook-unavailable        503
    │   └── LogbookFullError (OSError)            logbook-full                503
    ├── SchemaError (RuntimeError)                schema-out-of-date          503
    └── AuditChainError (RuntimeError)            audit-chain-broken          500

Messages never contain tracebacks, secrets or absolute paths of the server's file system, so
the REST layer may show them as they are.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AliasConflictError",
    "AliasNotFoundError",
    "AlreadyExistsError",
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactPathError",
    "AuditChainError",
    "AuthenticationError",
    "BodyTooLargeError",
    "ConfigurationError",
    "ConflictError",
    "ForbiddenError",
    "InvalidNameError",
    "InvalidStateError",
    "KeepwellError",
    "LogbookError",
    "LogbookFullError",
    "LogbookUnavailableError",
    "MalformedBodyError",
    "ModelInputError",
    "ModelNotFoundError",
    "NonFinitePredictionError",
    "NotFoundError",
    "PayloadError",
    "SchemaError",
    "UnsafeArtifactError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VersionNotFoundError",
]


class KeepwellError(Exception):
    """Root of every error keepwell raises on purpose."""

    code: ClassVar[str] = "keepwell-error"
    status: ClassVar[int] = 500


class ConfigurationError(KeepwellError, ValueError):
    """A setting in ``keepwell.yaml`` or a ``KEEPWELL_*`` variable is invalid."""

    code = "invalid-configuration"
    status = 400


class InvalidNameError(KeepwellError, ValueError):
    """A model, alias or feature name does not match the allowed pattern."""

    code = "invalid-name"
    status = 422


class ValidationError(KeepwellError, ValueError):
    """An argument or a data frame does not have the shape keepwell needs."""

    code = "validation-failed"
    status = 422


class FieldError(dict[str, str]):
    """One invalid field of a request: a JSON pointer into the body, and what is wrong."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(pointer=pointer, detail=detail)


class PayloadError(ValidationError):
    """A request body that does not fit: every offending field, each with its pointer."""

    code = "invalid-payload"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors[:100]
        first = errors[0]["detail"] if errors else "invalid payload"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}")


class ModelInputError(ValidationError):
    """The model raised on these inputs (a missing value it cannot impute, say)."""

    code = "model-input-error"


class MalformedBodyError(KeepwellError, ValueError):
    """The request body is not valid JSON."""

    code = "malformed-body"
    status = 400


class UnsupportedMediaTypeError(KeepwellError, ValueError):
    """The request body is not ``application/json``."""

    code = "unsupported-media-type"
    status = 415


class BodyTooLargeError(KeepwellError, ValueError):
    """The request body is over the size limit; it was refused before being read whole."""

    code = "body-too-large"
    status = 413


class AuthenticationError(KeepwellError, PermissionError):
    """No valid token was presented."""

    code = "unauthenticated"
    status = 401


class ForbiddenError(KeepwellError, PermissionError):
    """The token's role does not allow this action."""

    code = "forbidden"
    status = 403


class NonFinitePredictionError(KeepwellError, ArithmeticError):
    """The model returned NaN or an infinity, which JSON cannot carry."""

    code = "non-finite-prediction"
    status = 500


class NotFoundError(KeepwellError, LookupError):
    """Something asked for by name does not exist."""

    code = "not-found"
    status = 404


class ModelNotFoundError(NotFoundError):
    code = "model-not-found"


class VersionNotFoundError(NotFoundError):
    code = "version-not-found"


class AliasNotFoundError(NotFoundError):
    code = "alias-not-found"


class ConflictError(KeepwellError):
    """The change conflicts with the current state."""

    code = "conflict"
    status = 409


class AlreadyExistsError(ConflictError):
    code = "already-exists"


class AliasConflictError(ConflictError):
    """An alias no longer points where the caller expected (a failed ``If-Match``)."""

    code = "alias-precondition-failed"
    status = 412


class InvalidStateError(KeepwellError):
    """The operation is not allowed in the object's current state."""

    code = "invalid-state"
    status = 409


class UnsafeArtifactError(KeepwellError):
    """A model file would execute code, or holds types nobody trusted, so it is refused."""

    code = "unsafe-artifact"
    status = 422


class ArtifactError(KeepwellError, OSError):
    """The artifact store could not do what was asked."""

    code = "artifact-error"
    status = 500


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    code = "artifact-not-found"
    status = 404


class ArtifactPathError(ArtifactError, ValueError):
    """An artifact name would leave the store, or is not a name the store accepts."""

    code = "invalid-artifact-path"
    status = 422


class ArtifactIntegrityError(ArtifactError):
    """A stored artifact's bytes no longer hash to the digest it was stored under."""

    code = "artifact-integrity"
    status = 500


class LogbookError(KeepwellError):
    """The logbook could not keep a record; it was not acknowledged."""

    code = "logbook-error"
    status = 503


class LogbookUnavailableError(LogbookError, RuntimeError):
    """The log writer stopped (a sync failed) or is closed; records are refused."""

    code = "logbook-unavailable"


class LogbookFullError(LogbookError, OSError):
    """The log volume is full; this append was not kept, later ones retry."""

    code = "logbook-full"


class SchemaError(KeepwellError, RuntimeError):
    """The metadata database's schema is not the one this keepwell expects."""

    code = "schema-out-of-date"
    status = 503


class AuditChainError(KeepwellError, RuntimeError):
    """The audit log's hash chain is broken."""

    code = "audit-chain-broken"
    status = 500

"""keepwell keeps machine-learning models healthy in production.

>>> import keepwell as kw
>>> kw.register("employment", model, X, y, alias="champion")   # doctest: +SKIP
>>> ws = kw.connect()   # doctest: +SKIP
>>> ws.registry.load_model("employment@champion")   # doctest: +SKIP
"""

from __future__ import annotations

from keepwell.audit import AuditEvent, AuditLog, VerifyResult
from keepwell.config import Settings, load_settings
from keepwell.errors import (
    AliasConflictError,
    AliasNotFoundError,
    AlreadyExistsError,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactPathError,
    AuditChainError,
    AuthenticationError,
    BodyTooLargeError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    InvalidNameError,
    InvalidStateError,
    KeepwellError,
    LogbookError,
    LogbookFullError,
    LogbookUnavailableError,
    MalformedBodyError,
    ModelInputError,
    ModelNotFoundError,
    NonFinitePredictionError,
    NotFoundError,
    PayloadError,
    SchemaError,
    UnsafeArtifactError,
    UnsupportedMediaTypeError,
    ValidationError,
    VersionNotFoundError,
)
from keepwell.logbook import Feedback, Logbook, Prediction
from keepwell.registry import (
    AliasMove,
    ModelInfo,
    ModelVersion,
    ReferenceProfile,
    Registry,
    Signature,
)
from keepwell.workspace import SubjectErasure, Workspace, connect, register

__version__ = "0.1.0.dev0"

__all__ = [
    "AliasConflictError",
    "AliasMove",
    "AliasNotFoundError",
    "AlreadyExistsError",
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactPathError",
    "AuditChainError",
    "AuditEvent",
    "AuditLog",
    "AuthenticationError",
    "BodyTooLargeError",
    "ConfigurationError",
    "ConflictError",
    "Feedback",
    "ForbiddenError",
    "InvalidNameError",
    "InvalidStateError",
    "KeepwellError",
    "Logbook",
    "LogbookError",
    "LogbookFullError",
    "LogbookUnavailableError",
    "MalformedBodyError",
    "ModelInfo",
    "ModelInputError",
    "ModelNotFoundError",
    "ModelVersion",
    "NonFinitePredictionError",
    "NotFoundError",
    "PayloadError",
    "Prediction",
    "ReferenceProfile",
    "Registry",
    "SchemaError",
    "Settings",
    "Signature",
    "SubjectErasure",
    "UnsafeArtifactError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VerifyResult",
    "VersionNotFoundError",
    "Workspace",
    "__version__",
    "connect",
    "load_settings",
    "register",
]

"""Model flavors: how a model object becomes bytes in the artifact store, and back.

``skops`` is the default and the only flavor loaded without an explicit opt-in: it rebuilds
objects from a JSON schema and refuses any type that is neither on skops' own safe list nor on
the ``registry.trusted_types`` list of keepwell's configuration. The list always comes from
configuration, never from the file being loaded.

``pickle`` and ``joblib`` execute code while loading. keepwell stores them only when the
caller opts in for that model, pins the file's sha256 at registration, and loads them only for
models whose ``allow_unsafe_formats`` is set.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from keepwell.errors import UnsafeArtifactError, ValidationError

__all__ = ["FLAVORS", "Flavor", "FlavorName", "detect_flavor", "get_flavor"]

FlavorName = Literal["skops", "pickle", "joblib"]


class Flavor(Protocol):
    name: ClassVar[str]
    executes_code: ClassVar[bool]

    def dump(self, model: Any, *, trusted_types: Sequence[str]) -> bytes: ...

    def load(self, data: bytes, *, trusted_types: Sequence[str]) -> Any: ...


class SkopsFlavor:
    """skops' secure format, loaded with the configured trusted types only."""

    name: ClassVar[str] = "skops"
    executes_code: ClassVar[bool] = False

    def dump(self, model: Any, *, trusted_types: Sequence[str]) -> bytes:
        try:
            data: bytes = sio.dumps(model)
        except (TypeError, AttributeError, NotImplementedError) as exc:
            raise ValidationError(
                f"skops cannot serialise this {type(model).__name__} ({exc}); register it with "
                "flavor='pickle' and an explicit trust_pickle=True opt-in instead."
            ) from None
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted_types))
        if untrusted:
            raise UnsafeArtifactError(
                f"the model holds types that are not trusted for loading: {', '.join(untrusted)}."
                " If you trust them, add them to registry.trusted_types in keepwell.yaml."
            )
        return data

    def load(self, data: bytes, *, trusted_types: Sequence[str]) -> Any:
        try:
            return sio.loads(data, trusted=list(trusted_types))
        except UntrustedTypesFoundException:
            # Listed for the message only: what the file asks for never decides what is trusted.
            asked = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted_types))
            raise UnsafeArtifactError(
                f"the skops file asks for types that are not trusted: {', '.join(asked)[:500]}. "
                "keepwell "
                "refused to load it. Add them to registry.trusted_types in keepwell.yaml only "
                "if you trust where the file came from."
            ) from None
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ValidationError(f"not a valid skops file ({type(exc).__name__}).") from None


class PickleFlavor:
    """Python's pickle: loading runs arbitrary code, so it is opt-in and hash-pinned."""

    name: ClassVar[str] = "pickle"
    executes_code: ClassVar[bool] = True

    def dump(self, model: Any, *, trusted_types: Sequence[str]) -> bytes:
        return pickle.dumps(model, protocol=5)

    def load(self, data: bytes, *, trusted_types: Sequence[str]) -> Any:
        return pickle.loads(data)  # noqa: S301  (callers check the opt-in and the pinned hash)


class JoblibFlavor:
    """joblib's pickle-based format (as written by ``joblib.dump``): opt-in, hash-pinned."""

    name: ClassVar[str] = "joblib"
    executes_code: ClassVar[bool] = True

    def dump(self, model: Any, *, trusted_types: Sequence[str]) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()

    def load(self, data: bytes, *, trusted_types: Sequence[str]) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))  # callers check the opt-in and the pinned hash


FLAVORS: dict[str, Flavor] = {f.name: f for f in (SkopsFlavor(), PickleFlavor(), JoblibFlavor())}


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise ValidationError(
            f"unknown model flavor {name!r}; use one of {', '.join(sorted(FLAVORS))}."
        ) from None


def detect_flavor(data: bytes, filename: str = "") -> str:
    """Tell a skops file from a pickle or joblib one by its bytes, never by running it."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "schema.json" in archive.namelist():
                    return "skops"
        except zipfile.BadZipFile:
            pass
    if filename.endswith((".joblib", ".jbl")):
        return "joblib"
    if data[:1] == b"\x80" or filename.endswith((".pkl", ".pickle")):
        return "pickle"
    if _joblib_compressed(data):
        return "joblib"
    shown = Path(filename).name or "the model file"
    raise ValidationError(
        f"cannot tell the format of {shown}: keepwell reads skops files, and pickle or joblib "
        "files with an explicit opt-in."
    )


def _joblib_compressed(data: bytes) -> bool:
    """The containers ``joblib.dump(..., compress=...)`` writes: zlib, gzip, bz2, xz, lzma."""
    zlib_header = len(data) > 1 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0
    return zlib_header or data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"]\x00\x00"))

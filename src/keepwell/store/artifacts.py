"""The artifact store: content-addressed, verified on every read, atomic on every write.

Objects are stored under their sha256 (``objects/ab/ab12…``) and named files (reports,
exports) under ``named/``. Every path the store touches goes through :meth:`_resolve`, which
accepts only names made of ``[A-Za-z0-9._-]`` components separated by ``/`` and then checks
that the canonical path (symlinks resolved) lies inside the store root. Containment is the
guarantee; the character allowlist only keeps names portable. Nothing is filtered with a
denylist of spellings.

:class:`ArtifactStore` is the interface; :class:`LocalArtifactStore` implements it on a local
directory. An S3 store implements the same protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from keepwell._files import make_private_dir
from keepwell.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactPathError,
)

__all__ = ["ArtifactRef", "ArtifactStore", "LocalArtifactStore", "sha256_file"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_MAX_NAME = 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """Where an object lives: its sha256 digest and its size in bytes."""

    sha256: str
    size: int


@runtime_checkable
class ArtifactStore(Protocol):
    """What keepwell needs from an artifact store."""

    def put_bytes(self, data: bytes) -> ArtifactRef: ...

    def put_file(self, path: str | os.PathLike[str]) -> ArtifactRef: ...

    def get_bytes(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...

    def write_named(self, name: str, data: bytes) -> ArtifactRef: ...

    def read_named(self, name: str) -> bytes: ...


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalArtifactStore:
    """An artifact store on a local directory.

    Parameters
    ----------
    root:
        The store's directory; created (mode 0700) when missing.

    Examples
    --------
    >>> import tempfile
    >>> store = LocalArtifactStore(tempfile.mkdtemp())
    >>> ref = store.put_bytes(b"hello")
    >>> store.get_bytes(ref.sha256)
    b'hello'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- content-addressed objects ------------------------------------------------------

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data`` under its sha256; storing the same bytes twice is a no-op."""
        ref = ArtifactRef(hashlib.sha256(data).hexdigest(), len(data))
        target = self._object_path(ref.sha256)
        if not self._intact(target, ref.sha256):
            self._write_atomic(target, [data])
        return ref

    def put_file(self, path: str | os.PathLike[str]) -> ArtifactRef:
        """Copy a file into the store, hashing it while it streams."""
        tmp_path, ref = self._stream_to_temp(path)
        target = self._object_path(ref.sha256)
        if self._intact(target, ref.sha256):
            os.unlink(tmp_path)
        else:
            self._publish(tmp_path, target)
        return ref

    def get_bytes(self, sha256: str) -> bytes:
        """The object's bytes, after checking they still hash to ``sha256``.

        Raises
        ------
        ArtifactNotFoundError
            No object has this digest.
        ArtifactIntegrityError
            The stored bytes were changed after they were written.
        """
        path = self._object_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact {sha256[:12]}… is not in the store; it was deleted or never written."
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {sha256[:12]}… fails its integrity check (its bytes now hash to "
                f"{actual[:12]}…): the file was modified after it was stored. Restore it from a "
                f"backup or register the model again; do not load it."
            )
        return data

    def exists(self, sha256: str) -> bool:
        return self._object_path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._object_path(sha256).unlink()

    def iter_objects(self) -> Iterator[str]:
        """Digests of every stored object."""
        objects = self._resolve("objects")
        if objects.is_dir():
            for path in sorted(objects.glob("*/*")):
                if _DIGEST.fullmatch(path.name):
                    yield path.name

    # -- named files ----------------------------------------------------------------------

    def write_named(self, name: str, data: bytes) -> ArtifactRef:
        """Write a named file such as ``reports/2026-11-26/drift.html``, atomically."""
        target = self._resolve("named", name)
        self._write_atomic(target, [data])
        return ArtifactRef(hashlib.sha256(data).hexdigest(), len(data))

    def read_named(self, name: str) -> bytes:
        path = self._resolve("named", name)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFoundError(f"no artifact named {name!r} in the store.") from None

    # -- housekeeping ---------------------------------------------------------------------

    def sweep_temp(self, older_than_seconds: float = 3600.0) -> int:
        """Remove temporary files left by writes that crashed; returns how many."""
        tmp = self._resolve(".tmp")
        if not tmp.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    # -- internals ------------------------------------------------------------------------

    def _object_path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _DIGEST.fullmatch(sha256):
            raise ArtifactPathError(
                "an object id must be 64 lower-case hexadecimal characters (a sha256 digest)."
            )
        return self._resolve("objects", sha256[:2], sha256)

    def _resolve(self, area: str, *names: str) -> Path:
        """Canonical path of ``names`` in one of the store's areas, refusing what leaves it.

        ``area`` is one of the store's own folders (``objects``, ``named``, ``.tmp``); every
        part of ``names`` comes from a caller and is checked.
        """
        components: list[str] = [area]
        for name in names:
            if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
                raise ArtifactPathError("an artifact name must be a non-empty string of "
                                        f"at most {_MAX_NAME} characters.")
            for component in name.split("/"):
                if not _COMPONENT.fullmatch(component):
                    raise ArtifactPathError(
                        f"artifact name {_shown(name)} is not allowed: use '/'-separated "
                        "parts made of letters, digits, '.', '_' and '-', each starting with "
                        "a letter or digit."
                    )
                components.append(component)
        root = self.root.resolve()
        candidate = root.joinpath(*components).resolve()
        if not candidate.is_relative_to(root / area):
            shown = _shown(names[-1]) if names else repr(area)
            raise ArtifactPathError(
                f"artifact name {shown} resolves outside the store; use a name inside it."
            )
        return candidate

    def _intact(self, path: Path, sha256: str) -> bool:
        try:
            return sha256_file(path) == sha256
        except FileNotFoundError:
            return False

    def _temp_file(self) -> tuple[BinaryIO, str]:
        tmp_dir = self._resolve(".tmp")
        make_private_dir(tmp_dir)
        fd, tmp_path = tempfile.mkstemp(dir=tmp_dir, prefix="put-")  # created 0600
        return os.fdopen(fd, "wb"), tmp_path

    def _write_atomic(self, target: Path, chunks: list[bytes]) -> None:
        f, tmp_path = self._temp_file()
        try:
            with f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            self._publish(tmp_path, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise

    def _stream_to_temp(self, source: str | os.PathLike[str]) -> tuple[str, ArtifactRef]:
        digest = hashlib.sha256()
        size = 0
        f, tmp_path = self._temp_file()
        try:
            with f, open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise
        return tmp_path, ArtifactRef(digest.hexdigest(), size)

    def _publish(self, tmp_path: str, target: Path) -> None:
        """Rename a synced temporary file into place and sync the directory entry."""
        try:
            make_private_dir(target.parent)
            os.replace(tmp_path, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise ArtifactError(f"could not store an artifact ({exc.strerror}); check the "
                                "artifact root's free space and permissions.") from None


def _shown(name: str) -> str:
    """A name safe to put in a message: printable, short."""
    text = name.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\x00")
    return repr(text[:80] + ("…" if len(text) > 80 else ""))

"""The artifact store: content addressing, integrity on read, atomic writes, containment."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepwell.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactPathError,
)
from keepwell.store.artifacts import ArtifactStore, LocalArtifactStore

# The corpus of RELIABILITY.md S1: every spelling that ever escaped a store somewhere.
TRAVERSAL_NAMES = [
    "../canary.txt",
    "../../canary.txt",
    "a/../../canary.txt",
    "..\\canary.txt",
    "a\\..\\..\\canary.txt",
    "%2e%2e%2fcanary.txt",
    "%2e%2e/canary.txt",
    "%252e%252e%252fcanary.txt",
    "..%2fcanary.txt",
    "..;/canary.txt",
    "x;/../../canary.txt",
    "#/../canary.txt",
    "?/../canary.txt",
    "/etc/passwd",
    "/tmp/canary.txt",
    "file:///etc/passwd",
    "file:../canary.txt",
    "C:\\Windows\\win.ini",
    "C:/canary.txt",
    "\\\\host\\share\\canary.txt",
    "//host/share/canary.txt",
    "a\x00/../../canary.txt",
    "canary.txt\x00.png",
    "\u2024\u2024/canary.txt",  # one-dot leaders that look like '..'
    "\uff0e\uff0e/canary.txt",  # full-width full stops
    "..",
    ".",
    "",
    "a//b",
    "a/",
    "x" * 5000,
    "/".join(["a"] * 600),
]


@pytest.fixture
def layout(tmp_path: Path) -> tuple[LocalArtifactStore, Path]:
    """A store inside ``tmp_path/store`` and a canary file beside it, outside the store."""
    canary = tmp_path / "canary.txt"
    canary.write_text("outside")
    return LocalArtifactStore(tmp_path / "store"), canary


def files_outside(tmp_path: Path) -> set[Path]:
    return {p for p in tmp_path.rglob("*") if "store" not in p.relative_to(tmp_path).parts}


def test_store_implements_the_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalArtifactStore(tmp_path), ArtifactStore)


def test_put_get_is_content_addressed(layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    ref = store.put_bytes(b"model bytes")
    assert ref.sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert ref.size == len(b"model bytes")
    assert store.get_bytes(ref.sha256) == b"model bytes"
    assert store.put_bytes(b"model bytes") == ref  # idempotent
    assert list(store.iter_objects()) == [ref.sha256]


def test_put_file_streams_and_hashes(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    store = LocalArtifactStore(tmp_path / "store")
    ref = store.put_file(source)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(ref.sha256) == data
    assert not any((tmp_path / "store" / ".tmp").iterdir())


def test_flipping_one_byte_fails_the_next_read(layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    ref = store.put_bytes(b"x" * 1000)
    path = store.root / "objects" / ref.sha256[:2] / ref.sha256
    raw = bytearray(path.read_bytes())
    raw[500] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError, match="integrity"):
        store.get_bytes(ref.sha256)


def test_a_corrupted_object_is_rewritten_when_stored_again(
        layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    ref = store.put_bytes(b"payload")
    path = store.root / "objects" / ref.sha256[:2] / ref.sha256
    path.write_bytes(b"garbage")
    store.put_bytes(b"payload")
    assert store.get_bytes(ref.sha256) == b"payload"


def test_missing_object_is_a_clear_error(layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes("0" * 64)


def test_files_and_folders_are_private(layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    ref = store.put_bytes(b"secret model")
    store.write_named("reports/r.html", b"<html/>")
    path = store.root / "objects" / ref.sha256[:2] / ref.sha256
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((store.root / "named" / "reports" / "r.html").stat().st_mode) == 0o600
    for folder in (store.root / "objects", path.parent, store.root / ".tmp"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_crashed_write_leaves_no_visible_object(
        layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout

    class Boom(Exception):
        pass

    class ExplodingSource:
        def __fspath__(self) -> str:
            raise Boom

    with pytest.raises(Boom):
        store.put_file(ExplodingSource())  # type: ignore[arg-type]
    assert list(store.iter_objects()) == []


def test_sweep_removes_only_old_temporary_files(layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    store.put_bytes(b"x")
    old = store.root / ".tmp" / "put-old"
    new = store.root / ".tmp" / "put-new"
    old.write_bytes(b"partial")
    new.write_bytes(b"partial")
    os.utime(old, (0, 0))
    assert store.sweep_temp(older_than_seconds=3600) == 1
    assert not old.exists()
    assert new.exists()


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_named_files_cannot_escape(tmp_path: Path, layout: tuple[LocalArtifactStore, Path],
                                   name: str) -> None:
    store, canary = layout
    before = files_outside(tmp_path)
    with pytest.raises(ArtifactPathError):
        store.write_named(name, b"pwned")
    with pytest.raises(ArtifactPathError):
        store.read_named(name)
    assert canary.read_text() == "outside"
    assert files_outside(tmp_path) == before


@pytest.mark.parametrize("name", [*TRAVERSAL_NAMES, "A" * 64, "g" * 64, "a" * 63])
def test_object_ids_must_be_digests(layout: tuple[LocalArtifactStore, Path], name: str) -> None:
    store, _ = layout
    for call in (store.get_bytes, store.exists, store.delete):
        with pytest.raises(ArtifactPathError):
            call(name)


def test_symlink_inside_the_store_cannot_lead_out(tmp_path: Path,
                                                  layout: tuple[LocalArtifactStore, Path]) -> None:
    store, canary = layout
    store.write_named("ok.txt", b"fine")
    (store.root / "named" / "link").symlink_to(tmp_path)
    with pytest.raises(ArtifactPathError, match="outside"):
        store.read_named("link/canary.txt")
    with pytest.raises(ArtifactPathError, match="outside"):
        store.write_named("link/canary.txt", b"pwned")
    assert canary.read_text() == "outside"


def test_ordinary_names_work(layout: tuple[LocalArtifactStore, Path]) -> None:
    store, _ = layout
    store.write_named("reports/2026-11-26/drift.v1.html", b"<html/>")
    assert store.read_named("reports/2026-11-26/drift.v1.html") == b"<html/>"
    with pytest.raises(ArtifactNotFoundError):
        store.read_named("reports/none.html")


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=0, max_size=80))
def test_no_name_leaves_the_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    store = LocalArtifactStore(base / "store")
    with contextlib.suppress(ArtifactPathError):
        store.write_named(name, b"data")
    written = [p for p in base.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to((base / "store" / "named").resolve())
               or p.resolve().is_relative_to((base / "store" / ".tmp").resolve())
               for p in written)

"""The error tree: stable codes, HTTP statuses, built-in bases, and the tree drawn in the docs."""

from __future__ import annotations

import re

import pytest

import keepwell
from keepwell import errors
from keepwell.errors import KeepwellError

CLASSES: list[type[KeepwellError]] = [getattr(errors, name) for name in errors.__all__]
KEBAB = re.compile(r"[a-z]+(-[a-z]+)*")
# One line of the drawn tree: prefix, class name, optional built-in, code, status.
TREE_LINE = re.compile(
    r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z]\w+)(?: \((?P<builtin>\w+)\))?\s+"
    r"(?P<code>[a-z-]+)\s+(?P<status>\d{3})\s*$"
)


def drawn_tree() -> dict[str, tuple[int, str | None, str, int]]:
    """Name -> (depth, built-in, code, status) for every line of the docstring's tree."""
    doc = errors.__doc__
    assert doc is not None
    rows: dict[str, tuple[int, str | None, str, int]] = {}
    for line in doc.splitlines():
        stripped = line[4:] if line.startswith("    ") else line
        if stripped == "KeepwellError":
            rows["KeepwellError"] = (0, None, KeepwellError.code, KeepwellError.status)
            continue
        match = TREE_LINE.match(stripped)
        if match:
            depth = len(match["prefix"]) // 4
            rows[match["name"]] = (depth, match["builtin"], match["code"],
                                   int(match["status"]))
    return rows


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_a_keepwell_error_with_code_and_status(cls: type[KeepwellError]) -> None:
    assert issubclass(cls, KeepwellError)
    assert KEBAB.fullmatch(cls.code), cls.code
    assert type(cls.status) is int
    assert 400 <= cls.status <= 599
    assert cls.__module__ == "keepwell.errors"


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in CLASSES]
    assert len(codes) == len(set(codes))


def test_every_error_class_in_the_module_is_exported() -> None:
    defined = {name for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, BaseException)}
    assert defined == set(errors.__all__)
    assert errors.__all__ == sorted(errors.__all__)


def test_errors_are_re_exported_from_keepwell() -> None:
    for cls in CLASSES:
        assert getattr(keepwell, cls.__name__) is cls
        assert cls.__name__ in keepwell.__all__


@pytest.mark.parametrize(("cls", "builtin"), [
    (errors.ConfigurationError, ValueError),
    (errors.InvalidNameError, ValueError),
    (errors.ValidationError, ValueError),
    (errors.NotFoundError, LookupError),
    (errors.ModelNotFoundError, LookupError),
    (errors.VersionNotFoundError, LookupError),
    (errors.AliasNotFoundError, LookupError),
    (errors.ArtifactError, OSError),
    (errors.ArtifactNotFoundError, FileNotFoundError),
    (errors.ArtifactPathError, ValueError),
    (errors.ArtifactPathError, OSError),
    (errors.ArtifactIntegrityError, OSError),
    (errors.SchemaError, RuntimeError),
    (errors.AuditChainError, RuntimeError),
], ids=lambda v: v.__name__)
def test_errors_inherit_the_nearest_builtin(cls: type[KeepwellError],
                                            builtin: type[BaseException]) -> None:
    assert issubclass(cls, builtin)
    with pytest.raises(builtin):
        raise cls("what went wrong; what to do")


def test_subclasses_keep_their_family() -> None:
    for cls in (errors.ModelNotFoundError, errors.VersionNotFoundError,
                errors.AliasNotFoundError):
        assert issubclass(cls, errors.NotFoundError)
        assert cls.status == 404
    for cls in (errors.AlreadyExistsError, errors.AliasConflictError):
        assert issubclass(cls, errors.ConflictError)
    for cls in (errors.ArtifactNotFoundError, errors.ArtifactPathError,
                errors.ArtifactIntegrityError):
        assert issubclass(cls, errors.ArtifactError)


def test_errors_carry_their_message_and_class_attributes() -> None:
    err = errors.ModelNotFoundError("model 'fraud' does not exist; register it first.")
    assert str(err) == "model 'fraud' does not exist; register it first."
    assert (err.code, err.status) == ("model-not-found", 404)
    # An ArtifactNotFoundError is an OSError; a one-argument one keeps its message as is.
    missing = errors.ArtifactNotFoundError("artifact 'x' is gone; re-register the version.")
    assert str(missing) == "artifact 'x' is gone; re-register the version."


def test_docstring_tree_mentions_every_class() -> None:
    doc = errors.__doc__
    assert doc is not None
    for cls in CLASSES:
        assert re.search(rf"\b{cls.__name__}\b", doc), cls.__name__
    assert set(drawn_tree()) == set(errors.__all__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_tree_matches_the_classes(cls: type[KeepwellError]) -> None:
    tree = drawn_tree()
    depth, builtin, code, status = tree[cls.__name__]
    assert (code, status) == (cls.code, cls.status)
    if builtin is not None:
        assert [base.__name__ for base in cls.__bases__][1:] == [builtin]
    else:
        assert len(cls.__bases__) == 1
    # The drawn parent is the nearest line above at one level less.
    if cls is KeepwellError:
        return
    names = list(tree)
    index = names.index(cls.__name__)
    parent = next(n for n in reversed(names[:index]) if tree[n][0] == depth - 1)
    assert cls.__bases__[0].__name__ == parent

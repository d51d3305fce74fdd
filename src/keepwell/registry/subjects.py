"""The subjects a version was trained on, kept as hashes so erasure requests can be answered.

A subject set is the sorted array of 64-bit BLAKE2b hashes of the subject keys, stored as an
artifact (``KWSUBJ1`` magic, then little-endian uint64s). Asking whether a subject is in it is
a binary search. Keys are never stored in clear; two different keys share a hash with
probability about n / 2**64 for a set of n keys, so "trained on it" can very rarely be a false
positive, never a false negative.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from keepwell.errors import ValidationError

__all__ = ["SubjectSet", "subject_key_hash"]

_MAGIC = b"KWSUBJ1\n"


def subject_key_hash(subject: str) -> int:
    return int.from_bytes(hashlib.blake2b(subject.encode("utf-8"), digest_size=8).digest(),
                          "little")


class SubjectSet:
    """A set of subject keys, by hash.

    Examples
    --------
    >>> s = SubjectSet.from_keys(["p-1", "p-2"])
    >>> "p-2" in s, "p-3" in s, len(s)
    (True, False, 2)
    >>> "p-1" in SubjectSet.from_bytes(s.to_bytes())
    True
    """

    def __init__(self, hashes: np.ndarray) -> None:
        self.hashes = hashes

    @classmethod
    def from_keys(cls, keys: Iterable[object]) -> SubjectSet:
        hashes = []
        for key in keys:
            if key is None or (isinstance(key, float) and key != key):
                raise ValidationError("subjects must not contain missing values; pass one key "
                                      "per training row.")
            hashes.append(subject_key_hash(str(key)))
        return cls(np.unique(np.asarray(hashes, dtype=np.uint64)))

    def __contains__(self, subject: object) -> bool:
        h = np.uint64(subject_key_hash(str(subject)))
        i = int(np.searchsorted(self.hashes, h))
        return i < len(self.hashes) and self.hashes[i] == h

    def __len__(self) -> int:
        return len(self.hashes)

    def to_bytes(self) -> bytes:
        return _MAGIC + self.hashes.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SubjectSet:
        if not data.startswith(_MAGIC):
            raise ValidationError("not a keepwell subject set.")
        return cls(np.frombuffer(data[len(_MAGIC):], dtype="<u8").astype(np.uint64))

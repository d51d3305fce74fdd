"""The base class of every streaming concept-drift detector.

A detector watches one stream of numbers (usually a model's errors: 1 wrong, 0 right) and says,
after each value, whether the stream has just changed. Its whole API is River's:

* ``update(x)`` feeds one value;
* ``drift_detected`` says whether that value completed a detection;
* ``update_many(values)`` feeds many values and returns the indices where ``drift_detected``
  became true — the same indices a loop of ``update`` would find, only much faster.

**Reset after a detection.** When ``drift_detected`` is true, the next update first resets the
detector, so the value after a detection is the first value of a new concept (River does the
same). ``reset()`` restarts it at any time. Constructor parameters are stored unchanged and
validated once, in the constructor; a bad value raises :class:`~keepwell.errors.ValidationError`,
as does a NaN or infinite input (and, for the binary detectors, a value other than 0 or 1).
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from keepwell.errors import ValidationError

__all__ = ["DriftDetector", "InputKind", "WarningDetector"]

InputKind = Literal["binary", "real"]
"""What a detector reads: ``"binary"`` (1 error, 0 correct) or ``"real"`` (any finite number)."""

_PLAIN_NUMBERS = (float, int, bool)


class DriftDetector(abc.ABC):
    """A streaming concept-drift detector: ``update(x)``, ``drift_detected``, ``update_many``.

    Subclasses set the class attributes ``name`` (a stable registry id) and ``input_kind``, store
    their keyword parameters as given and call :meth:`_validate` and :meth:`_reset_state` in
    ``__init__``, and implement three methods: ``_reset_state`` (the state of a fresh detector),
    ``_update_one`` (one value) and ``_advance`` (a batch, from the current state, up to and
    including its first detection).
    """

    name: ClassVar[str]
    input_kind: ClassVar[InputKind] = "real"

    _drift_detected: bool

    # ------------------------------------------------------------------ public API

    @property
    def drift_detected(self) -> bool:
        """Whether the last value fed completed a detection."""
        return self._drift_detected

    def update(self, x: float) -> None:
        """Feed one value; afterwards ``drift_detected`` says whether it completed a detection.

        Raises
        ------
        ValidationError
            ``x`` is not a finite number (or, for a binary detector, not 0 or 1).
        """
        try:
            if type(x) in _PLAIN_NUMBERS or isinstance(x, np.integer | np.floating | np.bool_):
                value = float(x)
            else:
                raise TypeError
        except (TypeError, OverflowError):
            raise ValidationError(
                f"{self.name} reads real numbers; got {type(x).__name__} {x!r:.40}."
            ) from None
        if not math.isfinite(value):
            raise ValidationError(
                f"{self.name} got {value!r}; drop or impute missing values before the detector."
            )
        if self.input_kind == "binary" and value != 0.0 and value != 1.0:
            raise ValidationError(
                f"{self.name} reads a binary error stream (1 wrong, 0 right); got {value!r}."
            )
        if self._drift_detected:
            self._reset_state()
        self._update_one(value)

    def update_many(self, values: ArrayLike) -> NDArray[np.int64]:
        """Feed many values; return the positions in ``values`` where a drift was detected.

        The result, and the detector's state afterwards, are exactly those of calling
        ``update`` on each value in turn. The values are checked before any is used, so a bad
        batch leaves the detector as it was. An empty batch returns an empty array.

        Raises
        ------
        ValidationError
            ``values`` is not one-dimensional and numeric, holds NaN or infinity, or (for a
            binary detector) a value other than 0 or 1.
        """
        array = self._check_values(values)
        hits: list[int] = []
        low, high = self._chunk_sizes()
        position, size = 0, low
        while position < array.size:
            if self._drift_detected:
                self._reset_state()
            chunk = array[position : position + size]
            found = self._advance(chunk)
            if found < 0:
                position += chunk.size
                size = min(2 * size, high)
            else:
                hits.append(position + found)
                position += found + 1
                size = low
        return np.asarray(hits, dtype=np.int64)

    def reset(self) -> None:
        """Forget everything seen: the detector is as freshly constructed."""
        self._reset_state()

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, exactly as they were given."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def clone(self) -> Self:
        """A fresh detector with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _validate(self) -> None:
        """Raise ValidationError if a constructor parameter is out of range."""

    @abc.abstractmethod
    def _reset_state(self) -> None:
        """Set the state of a freshly constructed detector (``drift_detected`` false)."""

    @abc.abstractmethod
    def _update_one(self, x: float) -> None:
        """Feed one checked value to a detector whose ``drift_detected`` is false."""

    @abc.abstractmethod
    def _advance(self, chunk: NDArray[np.float64]) -> int:
        """Feed checked values from the current state until the first detection.

        Returns the index in ``chunk`` of the first detection, with the state as after that
        value (``drift_detected`` true), or -1 with the state as after the whole chunk.
        """

    def _chunk_sizes(self) -> tuple[int, int]:
        """First and largest batch handed to ``_advance``; batches double while no drift."""
        return 1024, 1 << 16

    def _check_values(self, values: ArrayLike) -> NDArray[np.float64]:
        array = np.asarray(values)
        if array.ndim != 1 or array.dtype.kind not in "biuf":
            raise ValidationError(
                f"{self.name}.update_many takes a one-dimensional array of numbers; got "
                f"dtype {array.dtype} with shape {array.shape}."
            )
        array = array.astype(np.float64, copy=False)
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValidationError(
                f"{self.name} got {array[bad][0]!r} at index {int(np.argmax(bad))}; drop or "
                "impute missing values before the detector."
            )
        if self.input_kind == "binary":
            bad = (array != 0.0) & (array != 1.0)
            if bad.any():
                raise ValidationError(
                    f"{self.name} reads a binary error stream (1 wrong, 0 right); got "
                    f"{array[bad][0]!r} at index {int(np.argmax(bad))}."
                )
        return array


class WarningDetector(DriftDetector):
    """A detector that also raises a warning before a drift (DDM, EDDM)."""

    _warning_detected: bool

    @property
    def warning_detected(self) -> bool:
        """Whether the detector is in its warning zone after the last value."""
        return self._warning_detected


def _require(condition: bool, message: str) -> None:
    """Raise ValidationError(message) unless ``condition`` holds (for ``_validate``)."""
    if not condition:
        raise ValidationError(message)


def _is_int(value: object) -> bool:
    """True for an ``int`` (not a ``bool``) or a numpy integer."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """True for a finite ``int`` or ``float`` (numpy's int and float64 included), not a ``bool``.

    numpy's float32 and float16 are refused: arithmetic with them rounds to their precision on
    one path and not the other, and ``update`` must agree with ``update_many`` to the bit.
    """
    return (
        isinstance(value, int | float | np.integer)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )

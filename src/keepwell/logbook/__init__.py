"""The logbook: a durable, fast log of predictions and late labels."""

from __future__ import annotations

from keepwell.logbook.erasure import ErasureReport
from keepwell.logbook.logbook import FeedbackResult, Logbook, RetentionReport
from keepwell.logbook.reader import Window
from keepwell.logbook.records import Feedback, Prediction
from keepwell.logbook.sealer import SealReport
from keepwell.logbook.writer import Durability, LogWriter

__all__ = [
    "Durability",
    "ErasureReport",
    "Feedback",
    "FeedbackResult",
    "LogWriter",
    "Logbook",
    "Prediction",
    "RetentionReport",
    "SealReport",
    "Window",
]

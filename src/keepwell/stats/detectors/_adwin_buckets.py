"""ADWIN's exponential histogram, for a whole batch of values at once.

Between two detections ADWIN only inserts, so its buckets follow from the count alone. A level
that has received ``c`` buckets has merged its two oldest ``merges(c)`` times (a merge each time
it reaches ``max_buckets + 1``) and holds ``c - 2 * merges(c)``; the next level has received
``merges(c)``. Every bucket of level ``i`` is the sum of an aligned block of ``2**i`` values, the
older half plus the newer half, as River adds them. So for a batch this module computes each
level's block sums once (pairwise, vectorised), then reads the buckets of any count from them:
the same floating-point numbers, in the same order, that River's insert-and-merge loop holds.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["LevelSums", "bucket_lists_at", "bucket_table", "cut_found", "level_sums"]

LevelSums = list[tuple[int, NDArray[np.float64]]]
"""Per level: (block index of the first sum, the block sums in order)."""


def _merges(count: NDArray[np.int64], max_buckets: int) -> NDArray[np.int64]:
    # 0 up to max_buckets, then one more at max_buckets + 1, + 3, + 5, ...
    merges: NDArray[np.int64] = np.maximum((count - max_buckets + 1) >> 1, 0)
    return merges


def level_sums(levels: list[list[float]], chunk: NDArray[np.float64], width: int) -> LevelSums:
    """The buckets of ``levels`` (after ``width`` values) and every sum ``chunk`` will form."""
    offset = width - len(levels[0])
    current = np.concatenate((np.asarray(levels[0], dtype=np.float64), chunk))
    result: LevelSums = [(offset, current)]
    level = 1
    while True:
        pairs = current[: current.size // 2 * 2]
        merged = pairs[0::2] + pairs[1::2]
        existing = levels[level] if level < len(levels) else []
        if merged.size == 0 and level >= len(levels):
            return result
        offset = offset // 2 - len(existing)
        current = np.concatenate((np.asarray(existing, dtype=np.float64), merged))
        result.append((offset, current))
        level += 1


def bucket_table(
    sums: LevelSums, widths: NDArray[np.int64], max_buckets: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64]]:
    """The buckets after each width: totals, which slots hold one, and where each one ends.

    Each array has one column per width and ``max_buckets`` rows per level, oldest level
    first (within a level, oldest bucket first): the order River's test walks them in.
    """
    count, end = widths.copy(), widths.copy()
    slots = np.arange(max_buckets)[:, None]
    totals, valid, ends = [], [], []
    for level, (offset, values) in enumerate(sums):
        merges = _merges(count, max_buckets)
        held = count - 2 * merges
        start = end - held * (1 << level)
        holds = slots < held
        if values.size:
            taken = np.take(values, ((start >> level) - offset) + slots, mode="clip")
            totals.append(np.where(holds, taken, 0.0))
        else:
            totals.append(np.zeros(holds.shape))
        valid.append(holds)
        ends.append(start + ((slots + 1) << level))
        count, end = merges, start
    return np.concatenate(totals[::-1]), np.concatenate(valid[::-1]), np.concatenate(ends[::-1])


def bucket_lists_at(sums: LevelSums, width: int, max_buckets: int) -> list[list[float]]:
    """The detector's per-level bucket lists after ``width`` values."""
    totals, valid, _ = bucket_table(sums, np.array([width]), max_buckets)
    rows = [slice(k, k + max_buckets) for k in range(0, totals.shape[0], max_buckets)][::-1]
    lists = [totals[row, 0][valid[row, 0]].tolist() for row in rows]
    # River keeps a level once created: the ones that ever received a bucket.
    count, kept = width, 1
    while count > max_buckets:
        count = (count - max_buckets - 1) // 2 + 1
        kept += 1
    return lists[:kept] + [[] for _ in range(kept - len(lists))]


def cut_found(
    table: tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64]],
    widths: NDArray[np.int64],
    totals: NDArray[np.float64],
    variances: NDArray[np.float64],
    *,
    delta: float,
    least: float,
) -> NDArray[np.bool_]:
    """Whether ADWIN's test finds a cut, after each width (a column of ``bucket_table``)."""
    buckets, valid, ends = table
    # u0 = t_1 + t_2 + ... and u1 = total - t_1 - t_2 - ..., one bucket at a time as River does
    # (row by row: numpy's cumsum along an axis is ten times slower).
    u0, u1 = np.empty_like(buckets), np.empty_like(buckets)
    u0[0], u1[0] = buckets[0], totals - buckets[0]
    for k in range(1, buckets.shape[0]):
        np.add(u0[k - 1], buckets[k], out=u0[k])
        np.subtract(u1[k - 1], buckets[k], out=u1[k])
    width = widths.astype(np.float64)
    n0 = ends.astype(np.float64)  # whole numbers: exact
    n1 = width - n0
    candidate = valid & (n0 >= least) & (n1 >= least)
    scaled = variances / width
    spread = np.array(
        [math.log(2.0 * math.log(w) / delta) if w > 1 else 0.0 for w in widths.tolist()]
    )
    # River's expressions, in its order, computed in place; slots that are not candidates may
    # divide by zero and are masked out at the end.
    with np.errstate(divide="ignore", invalid="ignore"):
        m = 1.0 / (n0 - least + 1.0)
        m += 1.0 / (n1 - least + 1.0)
        bound = 2.0 * m
        bound *= scaled
        bound *= spread
        np.sqrt(bound, out=bound)
        bound += 2.0 / 3.0 * spread * m
        gap = u0 / n0
        gap -= u1 / n1
    np.abs(gap, out=gap)
    found: NDArray[np.bool_] = np.any(candidate & (gap > bound), axis=0)
    return found

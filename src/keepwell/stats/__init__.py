"""Pure numerics: numpy and scipy in, numbers out; no I/O, no settings, no database.

- :mod:`keepwell.stats.drift` — univariate drift tests against a reference profile, and the
  verdict rule that combines significance with effect size.
"""

from __future__ import annotations

__all__: list[str] = []

"""``python -m keepwell.cli``: the ``keepwell`` command."""

from __future__ import annotations

from keepwell.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()

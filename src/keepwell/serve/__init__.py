"""The prediction server: REST API, micro-batching, traffic routing, logging, metrics."""

from __future__ import annotations

from keepwell.serve.app import create_app

__all__ = ["create_app"]

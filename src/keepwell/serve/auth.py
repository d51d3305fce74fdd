"""Bearer-token authentication and role checks, as FastAPI dependencies."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keepwell.access import Action, Principal, Tokens
from keepwell.errors import AuthenticationError, ForbiddenError

__all__ = ["Authenticator"]

_CACHE_SECONDS = 5.0
# Declares the bearer scheme in the OpenAPI document; checking stays with Authenticator.
_BEARER = HTTPBearer(auto_error=False, description="An API token: `keepwell token create`.")


class Authenticator:
    """Checks tokens against the database, caching answers for a few seconds (a revoked token
    stops working within that time)."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def principal(self, header: str | None) -> Principal:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("send an API token: Authorization: Bearer <token>.")
        token = token.strip()
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            principal = cached[1]
        else:
            principal = self.tokens.authenticate(token)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, principal)
        if principal is None:
            raise AuthenticationError("the API token is not valid, or was revoked.")
        return principal

    def allowed(self, header: str | None, action: Action) -> Principal:
        """The token's holder, if the token may do ``action``; else 401 or 403."""
        principal = self.principal(header)
        if not principal.can(action):
            raise ForbiddenError(f"the role {principal.role!r} may not {action}.")
        return principal

    def require(self, action: Action) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
        """A dependency that lets the request through only if its token may do ``action``."""

        async def dependency(request: Request,
                             _: Annotated[HTTPAuthorizationCredentials | None,
                                          Security(_BEARER)] = None) -> Principal:
            principal = self.allowed(request.headers.get("authorization"), action)
            request.state.principal = principal
            return principal

        return dependency

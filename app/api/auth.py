"""The API key check: a dependency for the routes that need `Authorization: Bearer <key>`."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from app.errors import Unauthorized
from app.service import Service


async def get_service(request: Request) -> Service:
    """Async on purpose: FastAPI runs plain-def dependencies in a thread pool, a hop per request."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def key_matches(authorization: str | None, expected: str) -> bool:
    """Whether the header is `Bearer <expected>`; compared as bytes, in constant time, any charset."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Header values arrive as latin-1 text; compare_digest refuses non-ASCII str, so compare bytes.
    return secrets.compare_digest(token.strip().encode("utf-8", "surrogateescape"), expected.encode())


async def require_api_key(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """With BERTSERVE_API_KEY set, the route needs `Authorization: Bearer <key>`."""
    expected = service.settings.api_key
    if expected is None:
        return
    if not key_matches(authorization, expected.get_secret_value()):
        raise Unauthorized("missing or wrong API key (send Authorization: Bearer <key>)")

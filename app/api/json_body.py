"""Request bodies parsed as strict JSON, on every route that takes one.

`json.loads` accepts what no handler can use: lone surrogates (`"\\ud800"`, a string that cannot
be encoded, so it fails later in the tokenizer or the response) and nesting deep enough to
exhaust the stack. The JSON parser of pydantic-core refuses both while parsing, as well as
integers longer than Python's own limit, so every string that reaches a handler is valid Unicode
and every structure is about `MAX_JSON_DEPTH` deep at most.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

MAX_JSON_DEPTH = 200
"""About the deepest nesting of arrays and objects the parser accepts (its fixed recursion limit)."""


class InvalidJSON(ValueError):
    """A body that is not strict JSON; the message says what and where."""


def parse_json(body: bytes) -> Any:
    """The document in `body`, refused with InvalidJSON where `json.loads` would let it through.

    The cyclic garbage collector is paused while it parses: a parsed document holds no reference
    cycles, and a body of many small arrays would otherwise set off full collections that scan
    the whole heap again and again, on the event loop."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return from_json(body)
    except ValueError as error:
        raise InvalidJSON(explain(str(error))) from None
    finally:
        if collecting:
            gc.enable()


def explain(detail: str) -> str:
    """The parser's message, with what it means for the messages that name no cause."""
    if "surrogate" in detail or "hex escape" in detail:
        return f"{detail} (a \\uD800-\\uDFFF escape must be half of a surrogate pair)"
    if "recursion limit" in detail:
        return f"{detail} (arrays and objects nest at most about {MAX_JSON_DEPTH} deep)"
    return detail


class StrictJSONRequest(Request):
    """A request whose `json()` is `parse_json` (FastAPI reads a body parameter through it)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except InvalidJSON as error:  # FastAPI answers this one as a json_invalid error
                raise json.JSONDecodeError(str(error), "", 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is parsed by `parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler

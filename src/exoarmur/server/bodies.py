"""Request bodies: JSON only, read once, by ExoArmur's own strict reader.

FastAPI would parse a body itself, with the standard library: a key given
twice counts its last value (a proxy that keeps the first one sees another
request), and a body without ``Content-Type: application/json`` reaches an
endpoint that reads raw bytes. Every route of the API is a
:class:`JSONBodyRoute`: before the endpoint or any dependency runs, a body
that is not declared ``application/json`` is refused (415) and a JSON one is
parsed by :func:`exoarmur.jsontext.loads` (a repeated key, ``NaN`` or an
overlong integer is refused naming its field); FastAPI then reads the parsed
value instead of parsing again. Nothing is executed for a refused body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ..errors import ExoArmurError
from ..jsontext import loads

_UNSET: Any = object()


class UnsupportedMediaType(ExoArmurError):
    """A request body that is not declared ``application/json`` (HTTP 415)."""


class StrictJSONRequest(Request):
    """A request whose :meth:`json` is ExoArmur's strict reading, done once."""

    _document: Any = _UNSET

    async def json(self) -> Any:
        if self._document is _UNSET:
            self._document = loads(await self.body())
        return self._document


def _declares_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json"


class JSONBodyRoute(APIRoute):
    """A route that only takes JSON bodies, parsed strictly before anything runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strictly(request: Request) -> Response:
            request = StrictJSONRequest(request.scope, request.receive)
            content_type = request.headers.get("content-type")
            if request.method in ("POST", "PUT", "PATCH") and (
                content_type is not None or await request.body()
            ):
                if content_type is None or not _declares_json(content_type):
                    raise UnsupportedMediaType(
                        f"the body must be JSON sent as Content-Type: application/json, "
                        f"not {content_type or 'undeclared'}"
                    )
                if await request.body():  # an empty one is "missing", the endpoint's to say
                    await request.json()
            return await handle(request)

        return strictly

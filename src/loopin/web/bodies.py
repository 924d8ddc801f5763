"""Reading a request body with a size cap, enforced while it arrives: a body over the cap is
refused as soon as it passes it, never held whole in memory."""

from __future__ import annotations

from starlette.requests import Request


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it has grown past ``limit`` bytes (the caller answers with its
    own surface's error; the rest of the body is not read)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)

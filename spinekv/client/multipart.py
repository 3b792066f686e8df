"""multipart/mixed answers (siblings, streamed 2i results), read with aiohttp's MultipartReader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp

from .errors import ServerError

Part = tuple[list[tuple[str, str]], bytes]  # (headers, body)


async def parts(headers: Mapping[str, str], content: aiohttp.StreamReader) -> AsyncIterator[Part]:
    """Each part of the body `content` carries, as it arrives; a malformed body is a ServerError."""
    try:
        reader = aiohttp.MultipartReader(headers, content)
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                raise ServerError("a multipart answer nested in another")
            yield list(part.headers.items()), bytes(await part.read())
    except ValueError as exc:  # no boundary, or the body broke off before its closing one
        raise ServerError(f"malformed multipart answer: {exc}") from None

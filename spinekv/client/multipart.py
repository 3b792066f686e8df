"""multipart/mixed bodies (siblings, streamed index results), split as the bytes arrive (pure)."""

from __future__ import annotations

import re

from .errors import ServerError

Part = tuple[list[tuple[str, str]], bytes]  # (headers, body)


def boundary_of(content_type: str) -> str | None:
    found = re.search(r'boundary\s*=\s*"?([^";]+)"?', content_type)
    return found.group(1).strip() if found else None


def _part(raw: bytes) -> Part:
    if raw.startswith(b"\r\n"):
        return [], raw[2:]  # a part with no headers
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = []
    for line in head.split(b"\r\n"):
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return headers, body


class MultipartStream:
    """Feed body bytes, get back each complete part; the preamble and epilogue are dropped."""

    def __init__(self, boundary: str) -> None:
        self._delimiter = re.compile(rb"\r?\n--" + re.escape(boundary.encode()) + rb"(--)?\r?\n")
        # A leading CRLF lets a body that opens with the delimiter match it too.
        self._buffer = b"\r\n"
        self._started = False
        self.done = False

    def feed(self, chunk: bytes) -> list[Part]:
        if self.done:
            return []
        self._buffer += chunk
        parts = []
        while (found := self._delimiter.search(self._buffer)) is not None:
            if self._started:
                parts.append(_part(self._buffer[: found.start()]))
            self._started = True
            self._buffer = self._buffer[found.end() :]
            if found.group(1):
                self.done = True
                self._buffer = b""
                break
        return parts

    def close(self) -> list[Part]:
        """The last part when the closing delimiter ends the body without a line break."""
        parts = [] if self.done else self.feed(b"\r\n")
        if not self.done:
            raise ServerError("multipart body ended before its closing boundary")
        return parts


def split(body: bytes, content_type: str) -> list[Part]:
    """Every part of a complete multipart/mixed body."""
    boundary = boundary_of(content_type)
    if boundary is None:
        raise ServerError(f"multipart answer without a boundary: {content_type!r}")
    stream = MultipartStream(boundary)
    return stream.feed(body) + stream.close()

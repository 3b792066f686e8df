"""The client's typed errors: one class per way a request can fail."""

from __future__ import annotations

import re

_QUORUM_REASON = re.compile(r"\b(r|w|dw|rw|pr|pw|node_confirms)=\d+ unsatisfied")


class SpinekvError(Exception):
    """Base of every error the spinekv client raises."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason if status is None else f"{status}: {reason}")
        self.reason = reason
        self.status = status


class BadRequest(SpinekvError):
    """The server refused the input (400, or 413 and the other 4xx); nothing was changed."""


class NotFound(SpinekvError):
    """The resource does not exist (404), e.g. an unknown bucket type."""


class Conflict(SpinekvError):
    """409: the request conflicts with the bucket's settings (e.g. counters need allow_mult)."""


class PreconditionFailed(SpinekvError):
    """412: If-Match / If-None-Match did not hold; nothing was written."""


class QuorumUnavailable(SpinekvError):
    """503: the cluster could not meet a quorum; `quorum` names which one ("r", "pw", ...)."""

    def __init__(self, reason: str, status: int | None = 503) -> None:
        super().__init__(reason, status)
        found = _QUORUM_REASON.search(reason)
        self.quorum: str | None = found.group(1) if found else None


class ServerError(SpinekvError):
    """Any other unexpected answer (a 5xx other than 503, or a malformed response)."""


class Unreachable(SpinekvError):
    """No node gave an answer; `attempts` lists each (node, what went wrong)."""

    def __init__(self, reason: str, attempts: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.attempts = attempts or []


class RequestTimeout(Unreachable):
    """No answer arrived in time; a write may or may not have been applied."""


class SiblingsError(SpinekvError):
    """The object has several siblings: resolve them before reading or changing one value."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"the object has {count} siblings: pick one (obj.siblings, obj.resolve(resolver)) "
            "or fetch with a resolver"
        )
        self.count = count


def error_for(status: int, reason: str) -> SpinekvError:
    """The typed error for an HTTP error answer with the server's reason text."""
    if status == 404:
        return NotFound(reason, status)
    if status == 409:
        return Conflict(reason, status)
    if status == 412:
        return PreconditionFailed(reason, status)
    if status == 503:
        return QuorumUnavailable(reason, status)
    if 400 <= status < 500:
        return BadRequest(reason, status)
    return ServerError(reason, status)

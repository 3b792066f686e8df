"""The Python client for spinekv's Riak-compatible HTTP API: Client (blocking) and AsyncClient."""

from .aio import AsyncClient
from .bucket import Bucket
from .errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    QuorumUnavailable,
    RequestTimeout,
    ServerError,
    SiblingsError,
    SpinekvError,
    Unreachable,
)
from .objects import IndexPage, Obj, PreflistEntry, Sibling, last_written_resolver
from .sync import Client

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Bucket",
    "Client",
    "Conflict",
    "IndexPage",
    "NotFound",
    "Obj",
    "PreconditionFailed",
    "PreflistEntry",
    "QuorumUnavailable",
    "RequestTimeout",
    "ServerError",
    "Sibling",
    "SiblingsError",
    "SpinekvError",
    "Unreachable",
    "last_written_resolver",
]

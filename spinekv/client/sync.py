"""Client: the AsyncClient's API, blocking, run on a private event loop in a daemon thread.

The protocol logic exists once (in AsyncClient); each blocking method hands the
coroutine to the private loop and waits for its result, so a Client works from
plain scripts, from several threads at once, and even from inside another event
loop (it then blocks that loop while it waits, like any blocking call).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .aio import AsyncClient, config_arguments
from .bucket import Bucket
from .objects import IndexPage, Obj, Resolver

T = TypeVar("T")


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _blocking(method: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """The blocking form of an AsyncClient coroutine method (same signature and docs)."""

    @functools.wraps(method)
    def call(self: Client, *args: Any, **kwargs: Any) -> Any:
        return self._adopt(self._run(method(self._aio, *args, **kwargs)))

    return call


def _blocking_iter(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., Iterator[Any]]:
    """The blocking form of an AsyncClient async-generator method: a plain iterator."""

    @functools.wraps(method)
    def call(self: Client, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._iterate(method(self._aio, *args, **kwargs))

    return call


class Client:
    """A blocking client for spinekv: see AsyncClient for the options and the failover rules.

    Use it as a context manager, or call close() when done.
    """

    def __init__(self, nodes: Any, **options: Any) -> None:
        self._aio = AsyncClient(nodes, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="spinekv-client", daemon=True
        )
        self._thread.start()
        # Stops the loop thread if the client is dropped without close().
        self._finalizer = weakref.finalize(self, _stop_loop, self._loop, self._thread)

    @classmethod
    def from_config(cls, path: str | Path, **options: Any) -> Client:
        """A client for every member node of a cluster.toml (over HTTPS, trusting its CA,
        when it has a [tls] table)."""
        urls, options = config_arguments(path, options)
        return cls(urls, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the private loop; safe to call twice."""
        if not self._finalizer.alive:
            return
        try:
            self._run(self._aio.close())
        finally:
            self._finalizer()
            self._loop.close()

    # ------------------------------------------------------------------ plumbing

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._finalizer.alive:
            coro.close()
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking Client call from its own loop (e.g. in a resolver)")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: do not leave the request running
            raise

    def _adopt(self, result: T) -> T:
        """Bind objects and pages the AsyncClient made to this Client, so obj.store() blocks."""
        if isinstance(result, Obj | IndexPage):
            result._client = self
        return result

    def _iterate(self, agen: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    item = self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield self._adopt(item)
        finally:
            if self._finalizer.alive:
                self._run(agen.aclose())  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ the API

    @property
    def nodes(self) -> list[str]:
        return self._aio.nodes

    @property
    def resolver(self) -> Resolver | None:
        return self._aio.resolver

    @resolver.setter
    def resolver(self, resolver: Resolver | None) -> None:
        self._aio.resolver = resolver

    @property
    def _bucket_resolvers(self) -> dict[tuple[str, str], Resolver]:
        return self._aio._bucket_resolvers

    def bucket(
        self, name: str, bucket_type: str = "default", *, resolver: Resolver | None = None
    ) -> Bucket:
        """A handle on one bucket; `resolver` (if given) becomes that bucket's resolver."""
        handle = Bucket(self, name, bucket_type)
        if resolver is not None:
            handle.resolver = resolver
        return handle

    @functools.wraps(AsyncClient.new)
    def new(self, *args: Any, **kwargs: Any) -> Obj:
        return self._adopt(self._aio.new(*args, **kwargs))

    get = _blocking(AsyncClient.get)
    put = _blocking(AsyncClient.put)
    store = _blocking(AsyncClient.store)
    delete = _blocking(AsyncClient.delete)
    get_index = _blocking(AsyncClient.get_index)
    iter_index = _blocking_iter(AsyncClient.iter_index)
    stream_index = _blocking_iter(AsyncClient.stream_index)
    list_keys = _blocking(AsyncClient.list_keys)
    stream_keys = _blocking_iter(AsyncClient.stream_keys)
    list_buckets = _blocking(AsyncClient.list_buckets)
    stream_buckets = _blocking_iter(AsyncClient.stream_buckets)
    get_bucket_props = _blocking(AsyncClient.get_bucket_props)
    set_bucket_props = _blocking(AsyncClient.set_bucket_props)
    reset_bucket_props = _blocking(AsyncClient.reset_bucket_props)
    get_type_props = _blocking(AsyncClient.get_type_props)
    set_type_props = _blocking(AsyncClient.set_type_props)
    get_counter = _blocking(AsyncClient.get_counter)
    update_counter = _blocking(AsyncClient.update_counter)
    ping = _blocking(AsyncClient.ping)
    stats = _blocking(AsyncClient.stats)
    preflist = _blocking(AsyncClient.preflist)

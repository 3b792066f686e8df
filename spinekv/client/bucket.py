"""Bucket: a handle that fills in the bucket (and type) for a Client's or AsyncClient's calls."""

from __future__ import annotations

from typing import Any

from .objects import Obj, Resolver


class Bucket:
    """Calls on one bucket of one bucket type.

    Each method returns what the client's method returns: the result with Client,
    an awaitable with AsyncClient. `resolver` is kept by the client, so every
    handle on the same bucket (and plain client calls on it) shares it.
    """

    def __init__(self, client: Any, name: str, bucket_type: str) -> None:
        self.client = client
        self.name = name
        self.bucket_type = bucket_type

    def __repr__(self) -> str:
        return f"<Bucket {self.bucket_type}/{self.name}>"

    @property
    def resolver(self) -> Resolver | None:
        return self.client._bucket_resolvers.get((self.bucket_type, self.name))

    @resolver.setter
    def resolver(self, resolver: Resolver | None) -> None:
        where = (self.bucket_type, self.name)
        if resolver is None:
            self.client._bucket_resolvers.pop(where, None)
        else:
            self.client._bucket_resolvers[where] = resolver

    def _typed(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"bucket_type": self.bucket_type, **options}

    def new(self, key: str | None = None, value: Any = b"", **options: Any) -> Obj:
        return self.client.new(self.name, key, value, **self._typed(options))

    def get(self, key: str, **options: Any) -> Any:
        return self.client.get(self.name, key, **self._typed(options))

    def store(self, key: str | None, value: Any, **options: Any) -> Any:
        return self.client.store(self.name, key, value, **self._typed(options))

    def delete(self, key: str, **options: Any) -> Any:
        return self.client.delete(self.name, key, **self._typed(options))

    def get_index(self, index: str, start: Any = None, end: Any = None, **options: Any) -> Any:
        return self.client.get_index(self.name, index, start, end, **self._typed(options))

    def iter_index(self, index: str, start: Any = None, end: Any = None, **options: Any) -> Any:
        return self.client.iter_index(self.name, index, start, end, **self._typed(options))

    def stream_index(self, index: str, start: Any = None, end: Any = None, **options: Any) -> Any:
        return self.client.stream_index(self.name, index, start, end, **self._typed(options))

    def list_keys(self, **options: Any) -> Any:
        return self.client.list_keys(self.name, **self._typed(options))

    def stream_keys(self, **options: Any) -> Any:
        return self.client.stream_keys(self.name, **self._typed(options))

    def get_props(self) -> Any:
        return self.client.get_bucket_props(self.name, bucket_type=self.bucket_type)

    def set_props(self, props: dict[str, Any]) -> Any:
        return self.client.set_bucket_props(self.name, props, bucket_type=self.bucket_type)

    def reset_props(self) -> Any:
        return self.client.reset_bucket_props(self.name, bucket_type=self.bucket_type)

    def preflist(self, key: str) -> Any:
        return self.client.preflist(self.name, key, bucket_type=self.bucket_type)

    def get_counter(self, key: str, **options: Any) -> Any:
        self._default_type_only()
        return self.client.get_counter(self.name, key, **options)

    def update_counter(self, key: str, amount: int = 1, **options: Any) -> Any:
        self._default_type_only()
        return self.client.update_counter(self.name, key, amount, **options)

    def _default_type_only(self) -> None:
        if self.bucket_type != "default":
            raise ValueError("Riak's legacy counters exist only in the default bucket type")

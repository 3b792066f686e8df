"""spinekv: a Riak-style Dynamo key-value record store over LevelDB."""

__all__: list[str] = []

"""Storage backends: the Backend interface, LevelDB and in-memory implementations."""

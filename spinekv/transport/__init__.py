"""Internode messaging: the Transport interface and its implementations."""

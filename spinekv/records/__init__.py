"""The record layer: NHS demographics and Summary Care Records kept as ordinary spinekv objects."""

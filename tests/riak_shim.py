"""Imports the PyPI `riak` 2.7.0 client on Python 3.11 without touching its files on disk."""

from __future__ import annotations

import collections
import collections.abc
import warnings
from types import ModuleType

# riak 2.7.0 predates Python 3.10, which removed the ABC aliases from `collections`. Each alias is
# the very class from collections.abc, so code outside riak sees nothing new.
_ABC_ALIASES = {
    # riak.mapreduce imports it; riak.datatypes.set checks values against it.
    "Iterable": collections.abc.Iterable,
    # riak.util.quacks_like_dict (deep_merge of options) and riak.datatypes.map.
    "Mapping": collections.abc.Mapping,
    # riak.client.index_page: IndexPage, what get_index returns, subclasses it.
    "Sequence": collections.abc.Sequence,
    # riak.datatypes.set: the Set datatype subclasses it.
    "Set": collections.abc.Set,
    # riak.datatypes.register imports it.
    "Sized": collections.abc.Sized,
}


def import_riak() -> ModuleType:
    """Return the `riak` module, imported with the aliases it needs on this Python."""
    for name, abc in _ABC_ALIASES.items():
        if not hasattr(collections, name):
            setattr(collections, name, abc)
    original_namedtuple = collections.namedtuple

    def namedtuple_ignoring_verbose(*args, verbose=False, **kwargs):
        # riak.codecs builds its Msg tuple with verbose=False, an argument Python 3.7 removed.
        # Only module import calls it, so the stand-in is put back as soon as riak is loaded.
        return original_namedtuple(*args, **kwargs)

    collections.namedtuple = namedtuple_ignoring_verbose
    try:
        with warnings.catch_warnings():
            # riak imports cgi and distutils, both deprecated on 3.11 (still present, removed in
            # 3.12/3.13); the warnings say nothing about spinekv.
            warnings.simplefilter("ignore", DeprecationWarning)
            import riak
    finally:
        collections.namedtuple = original_namedtuple
    return riak

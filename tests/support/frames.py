"""Malformed replication frames for the decoding tests: a valid message with its header changed."""

import json


def changed(frames, change):
    """``frames`` with ``change(head)`` applied to its decoded JSON header."""
    head = json.loads(frames[0])
    change(head)
    return [json.dumps(head).encode("utf-8")] + frames[1:]


def set_field(name, value):
    """A change that sets the header field ``name`` to ``value``."""
    return lambda head: head.__setitem__(name, value)


def drop_field(name):
    """A change that removes the header field ``name``."""
    return lambda head: head.pop(name)


def set_file(index, name, value):
    """A change that sets field ``name`` of the header's file entry ``index``."""
    return lambda head: head["files"][index].__setitem__(name, value)

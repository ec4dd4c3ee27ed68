"""Where a node listens: Twisted endpoint descriptions, opened all or none.

A listener is described as ``serverFromString`` reads it:
``tcp:8085:interface=127.0.0.1``, ``ssl:8443:privateKey=key.pem:certKey=cert.pem``,
``unix:/run/imagepipe/imagepipe.sock``, or ``systemd:domain=INET:index=0`` for a
socket that systemd opened and passed on.  ``tcp_description`` says the
original ``[network] interface`` and ``port`` in these terms, ``descriptions``
checks ``[network] listen`` when the config loads, and ``listen`` opens a set
of descriptions on the reactor it is given.
"""

import os
import re

from twisted.internet import defer, error
from twisted.internet.address import IPv6Address, UNIXAddress
from twisted.internet.endpoints import quoteStringArgument, serverFromString

from imagepipe.errors import ConfigError

EXAMPLES = ("tcp:8085:interface=127.0.0.1, ssl:8443:privateKey=key.pem:certKey=cert.pem, "
            "unix:/run/imagepipe/imagepipe.sock or systemd:domain=INET:index=0")


class ListenFailed(Exception):
    """An endpoint could not listen; the message is one line naming it and why."""


def tcp_description(interface, port):
    """The description of the original ``interface`` and ``port`` keys."""
    return f"tcp:{port}:interface={quoteStringArgument(interface)}"


def descriptions(filename, listen, interface, port):
    """The descriptions a node listens on: ``listen``, or else ``interface`` and ``port``.

    Each of ``listen`` must parse (``checked``).
    """
    if not listen:
        return (tcp_description(interface, port),)
    return checked(filename, "[network] listen", listen)


def checked(filename, key, listen):
    """``listen`` (descriptions) as a tuple, once each parses; else ``ConfigError``.

    The error is one line naming ``key``, the description and what is wrong.
    """
    for index, description in enumerate(listen):
        where = f"{filename}: {key} = {description!r}"
        if description in listen[:index]:
            raise ConfigError(f"{where}: listed twice")
        try:
            # Only parsed: no reactor is used until the node listens, with its own.
            serverFromString(None, description)
        except Exception as reason:  # noqa: BLE001 - each endpoint parser raises its own
            raise ConfigError(f"{where}: {_why(description, reason)}") from None
    return tuple(listen)


def _why(description, reason):
    if _kind(description) == "systemd" and isinstance(reason, (IndexError, KeyError)):
        return ("systemd passed no such socket (LISTEN_FDS, LISTEN_FDNAMES): start the "
                "node through its socket unit (examples/imagepipe.socket)")
    if isinstance(reason, OSError) and reason.filename:
        return f"cannot read {reason.filename}: {reason.strerror}"
    # TypeError names the parser function: "_parseTCP() missing 1 required ..."
    text = re.sub(r"^_?\w+\(\) ", "", _first_line(reason))
    return f"expected an endpoint description such as {EXAMPLES} ({text})"


def _kind(description):
    """The endpoint type a description starts with: tcp, ssl, unix, systemd..."""
    return description.partition(":")[0].lower()


def listen(reactor, descriptions, factory):
    """Listen with ``factory`` on every one of ``descriptions``.

    Returns a Deferred firing with ``{description: IListeningPort}`` once all
    listen.  If one cannot, it fails with ``ListenFailed`` (the first failure,
    in description order) and those that did listen are told to stop.
    """
    descriptions = tuple(descriptions)
    attempts = [_listen_on(reactor, description, factory) for description in descriptions]

    def settle(results):
        ports = {description: value for description, (ok, value)
                 in zip(descriptions, results) if ok}
        failures = [value for ok, value in results if not ok]
        if not failures:
            return ports
        for port in ports.values():
            # Not waited for: a port closes on the reactor's next turn, and at
            # start-up the node exits before that (a unix socket left behind is
            # cleared by the next start, its lock being stale).
            port.stopListening()
        return failures[0]

    return defer.DeferredList(attempts, consumeErrors=True).addCallback(settle)


def _listen_on(reactor, description, factory):
    d = defer.maybeDeferred(lambda: serverFromString(reactor, description).listen(factory))

    def failed(failure):
        reason = failure.value
        if isinstance(reason, error.CannotListenError):  # names the address already
            raise ListenFailed(str(reason))
        raise ListenFailed(f"Couldn't listen on {description}: {_first_line(reason)}")

    return d.addErrback(failed)


def where(description, port):
    """What ``port`` listens on, for the log: host:port or a unix socket's path, and the kind."""
    host = port.getHost()
    if isinstance(host, UNIXAddress):
        place = os.fsdecode(host.name) if host.name is not None else "an unnamed socket"
    elif isinstance(host, IPv6Address):
        place = f"[{host.host}]:{host.port}"
    else:
        place = f"{host.host}:{host.port}"
    return f"{place} ({_kind(description)})"


def _first_line(reason):
    text = str(reason).strip()
    return text.splitlines()[0] if text else type(reason).__name__

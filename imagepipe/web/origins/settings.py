"""The settings of the HTTP origins, each checked when they are made.

A bad value raises ``ValueError`` naming the field, which the configuration
layer reports at startup.  Importing this module imports no Twisted.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from imagepipe.web.origins.guard import allowance


def _check_base(name, base):
    if not isinstance(base, str) or not base.isascii():
        raise ValueError(f"{name}: expected an http(s) URL in ASCII, got {base!r}")
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{name}: {base!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: expected an http:// or https:// URL with a host, "
                         f"got {base!r}")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"{name}: a base URL has no user, query or fragment, got {base!r}")


def _check_number(name, value, kind, low):
    if type(value) not in kind or value < low:
        raise ValueError(f"{name}: expected a number of at least {low}, got {value!r}")


@dataclass(frozen=True)
class OriginSettings:
    """Where sources come from over HTTP, and the limits on fetching them.

    A base URL names a directory: ``https://h/a`` and ``https://h/a/`` are
    the same.  A bad value raises ``ValueError`` naming the field, so the
    configuration layer can report it at startup.
    """

    master: str
    fallbacks: tuple = ()
    allow: tuple = ()  # host names and networks fetched from even when private
    connect_timeout: float = 5.0  # resolving and connecting
    read_timeout: float = 10.0  # the whole answer, once connected
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 3
    user_agent: str = "imagepipe"

    def __post_init__(self):
        _check_base("master", self.master)
        if not isinstance(self.fallbacks, tuple):
            raise ValueError(f"fallbacks: expected a tuple of URLs, got {self.fallbacks!r}")
        for index, base in enumerate(self.fallbacks):
            _check_base(f"fallbacks[{index}]", base)
        if not isinstance(self.allow, tuple) or not all(isinstance(e, str) for e in self.allow):
            raise ValueError(f"allow: expected a tuple of host names and networks, "
                             f"got {self.allow!r}")
        allowance(self.allow)
        _check_number("connect_timeout", self.connect_timeout, (int, float), 0.001)
        _check_number("read_timeout", self.read_timeout, (int, float), 0.001)
        _check_number("max_bytes", self.max_bytes, (int,), 1)
        _check_number("max_redirects", self.max_redirects, (int,), 0)
        if (not isinstance(self.user_agent, str) or not self.user_agent.isascii()
                or not self.user_agent.isprintable()):
            raise ValueError(f"user_agent: expected printable ASCII, got {self.user_agent!r}")

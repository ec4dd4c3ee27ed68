"""What names a cached result and what every result depends on.

``cache_name``: the file a request's result is stored as (what nginx's
``try_files`` looks for).  ``fingerprint``: the settings results depend on
besides the request; when it changes, the cache empties at start.
"""

import dataclasses
import hashlib

_MAX_COMPONENT = 255
_MAX_EXTENSION = 5  # ".webp"
_MAX_QUERY = 1024
_UNSAFE = frozenset("\0?@\\")


def cache_name(path, query="", suffix=""):
    """The cache name of a request, or None when it cannot name a file safely.

    ``path`` is the percent-decoded request path including the mount prefix;
    ``query`` the raw query string when the dialect reads it; ``suffix`` the
    format chosen by ``format:auto``.  Path components may not hold ``?``
    or ``@`` (they separate the query and the suffix), nor start with a dot;
    the query may not hold ``/``: so no name is ever a directory that a
    query could climb out of.
    """
    parts = path.split("/")
    if parts[0] != "" or len(parts) < 3:
        return None
    for part in parts[1:]:
        if (not part or part.startswith(".") or not _UNSAFE.isdisjoint(part)
                or len(part.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT):
            return None
    name = path[1:]
    if query:
        if "/" in query or "\0" in query or len(query) > _MAX_QUERY:
            return None
        name = f"{name}?{query}"
    if suffix:
        name = f"{name}@{suffix}"
    last = name.rpartition("/")[2].encode("utf-8", "surrogatepass")
    if len(last) + _MAX_EXTENSION > _MAX_COMPONENT:
        return None
    return name


def fingerprint(version, engine, settings, sign_keys=()):
    """What cached results depend on besides the request: when it changes, the cache empties.

    ``version`` of imagepipe, the ``engine`` (its name and formats), the
    ``[http]`` settings that shape a result (quality, AVIF, mounts, origins)
    and the URL signing keys.
    """
    described = _stable((version, engine.name, engine.formats, settings.quality,
                         settings.auto_avif, settings.mounts, settings.origins,
                         [key.hex() for key in sign_keys]))
    return hashlib.sha256(described.encode()).hexdigest()


def _stable(value):
    """A text for ``value`` that is the same in every process (sets sorted, not hashed)."""
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return "{" + ",".join(f"{_stable(k)}:{_stable(v)}" for k, v in
                              sorted(value.items(), key=lambda item: repr(item[0]))) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(_stable(v) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_stable(v) for v in value) + "]"
    return repr(value)

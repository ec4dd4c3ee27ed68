"""The value checks of our own setting types, their units, and what each accepts in words.

``CHECKS`` extends configobj's ``Validator`` (``byte_size``, ``duration``,
``prefix``, ...); ``expected(setting)`` says in words what a setting takes, for
the one-line ``ConfigError``.
"""

import re

from validate import VdtValueError

from imagepipe.imaging.vocabulary import MAX_SIDE

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000 ** 2, "mb": 1000 ** 2, "mib": 1024 ** 2,
    "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
    "t": 1000 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4,
}
_PIXEL_UNITS = {"": 1, "p": 1, "kp": 1000, "mp": 1000 ** 2, "gp": 1000 ** 3}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def _quantity(value, units):
    match = _QUANTITY.match(str(value))
    if not match or match.group(2).lower() not in units:
        raise VdtValueError(value)
    return int(float(match.group(1)) * units[match.group(2).lower()])


def _check_umask(value):
    text = str(value).strip()
    try:
        if text.lower().startswith("0o"):
            mask = int(text[2:], 8)
        elif len(text) > 1 and text.startswith("0"):
            mask = int(text, 8)
        else:
            mask = int(text, 10)
    except ValueError:
        raise VdtValueError(value) from None
    if not 0 <= mask <= 0o777:
        raise VdtValueError(value)
    return mask


def _check_endpoints(value):
    items = value if isinstance(value, list) else [value]
    items = [item.strip() for item in items if item.strip()]
    for item in items:
        if not re.match(r"^(tcp|ipc|inproc)://\S+$", item):
            raise VdtValueError(item)
    return tuple(items)


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _check_string_list(value):
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(item.strip() for item in items if item.strip())


_PREFIX = re.compile(r"^/[A-Za-z0-9_.-]{1,64}/$")
_RESERVED_PREFIXES = {"/images/", "/status/", "/health/", "/RPC2/"}
_SIZE = re.compile(r"^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$")


def _check_prefix(value):
    text = str(value).strip()
    if not _PREFIX.match(text) or text in _RESERVED_PREFIXES or text[1] == ".":
        raise VdtValueError(value)
    return text


def _check_size(value):
    match = _SIZE.match(str(value))
    if not match or not all(1 <= int(side) <= MAX_SIDE for side in match.groups()):
        raise VdtValueError(value)
    return int(match.group(1)), int(match.group(2))


def _check_sizes(value):
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(_check_size(item) for item in items if str(item).strip())


CHECKS = {
    "prefix": _check_prefix,
    "size": _check_size,
    "sizes": _check_sizes,
    "duration": lambda value: float(_quantity(value, _DURATION_UNITS)),
    "string_list": _check_string_list,
    "byte_size": lambda value: _quantity(value, _UNITS),
    "pixel_count": lambda value: _quantity(value, _PIXEL_UNITS),
    "umask": _check_umask,
    "endpoints": _check_endpoints,
    "directory": lambda value: str(value),
    # Text that may hold commas (configobj would read a list): joined back as written.
    "text": lambda value: ", ".join(value) if isinstance(value, list) else str(value),
}

_EXPECTED = {
    "string": "a text value",
    "text": "a text value",
    "boolean": "true or false",
    "byte_size": "a byte count such as 512MiB, 64MB or 1048576",
    "pixel_count": "a pixel count such as 50MP, 16KP or 20000",
    "umask": "an octal umask with a leading 0 (0022) or a decimal one (18)",
    "endpoints": "ZeroMQ endpoints such as tcp://127.0.0.1:8086, comma separated",
    "directory": "an existing directory",
    "duration": "a duration such as 7d, 12h, 30m or 90s",
    "string_list": "names, comma separated",
    "prefix": "one URL path segment between slashes, such as /r/ (not /images/, "
              "/status/, /health/ or /RPC2/)",
    "size": f"a size WxH such as 2000x2000 (sides 1..{MAX_SIDE})",
    "sizes": "sizes WxH, comma separated, such as 72x72, 200x250",
}


def expected(setting):
    """Describe in words what a setting accepts."""
    name, _, args = setting.check.partition("(")
    if name == "integer":
        low, high = args.rstrip(")").split(",")
        return f"a whole number from {low.strip()} to {high.strip()}"
    if name == "float":
        low, high = args.rstrip(")").split(",")
        return f"a number from {low.strip()} to {high.strip()}"
    if name == "option":
        return "one of " + args.rstrip(")").replace("'", "")
    return _EXPECTED[name]



"""Every setting of imagepipe, declared once, and the loading of a config file.

``SETTINGS`` is the single declaration: section, key, type, default and
description.  The configobj spec, the typed ``Config`` and the commented
``imagepipe.ini.dist`` (``python -m imagepipe.config``) are all derived from
it.  Any problem becomes a ``ConfigError`` whose message is one line naming
the file, section, key, the bad value and what was expected.
"""

import ipaddress
import os
import re
import resource
import sys
from dataclasses import dataclass

from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
from validate import Validator, VdtValueError

from imagepipe.errors import ConfigError
from imagepipe.imaging import engines
from imagepipe.imaging.vocabulary import MAX_SIDE
from imagepipe.paths import PathRules


@dataclass(frozen=True)
class Setting:
    """One configuration key: where it lives, its type, default and meaning."""

    section: str  # "network", or "imagemagick/env" for a subsection
    key: str
    check: str  # a configobj check, possibly one of ours (see CHECKS)
    default: str | None  # None: the key is required
    description: str
    example: str | None = None  # shown in the .dist file instead of the default


SETTINGS = (
    Setting("network", "interface", "string", "127.0.0.1",
            "Address to listen on for XML-RPC calls. Use 0.0.0.0 to listen on every "
            "interface (only behind a firewall, or with auth enabled)."),
    Setting("network", "port", "integer(0, 65535)", "8085",
            "TCP port for XML-RPC calls (POST /) and the read-only tree (GET /images/)."),
    Setting("network", "auth", "option('none', 'basic', 'token')", "none",
            "Authentication of XML-RPC calls: none, basic (HTTP Basic, 'user:password' "
            "lines in auth_file) or token ('Authorization: Bearer <token>', one token per "
            "line in auth_file)."),
    Setting("network", "auth_file", "string", "",
            "File holding the credentials for auth = basic or token; relative paths are "
            "taken from the directory of this file."),
    Setting("network", "max_request_bytes", "byte_size", "64MiB",
            "Largest XML-RPC request body accepted; larger ones get HTTP 413 before the "
            "body is read. Units: B, KiB, MiB, GiB (or KB, MB, GB)."),
    Setting("network", "serve_images", "boolean", "true",
            "Serve the stored tree read-only at /images/ (no listings, no dotfiles)."),
    Setting("network", "access_log", "string", "-",
            "Where each HTTP request is logged (combined log format): - for the twistd "
            "log, a file name (relative to this file's directory), or empty for nowhere "
            "(e.g. behind nginx, which logs them)."),
    Setting("network", "shutdown_timeout", "float(0, 3600)", "30",
            "Seconds to wait for calls in flight to finish on SIGTERM before exiting."),
    Setting("network", "head_timeout", "float(1, 3600)", "30",
            "Seconds a client has to send a whole request line and headers, however the "
            "bytes trickle in (then 408 and the connection closes; nginx's "
            "client_header_timeout, imgproxy's read timeout)."),
    Setting("network", "body_timeout", "float(1, 3600)", "30",
            "Seconds a request body may take, plus one second for every body_min_rate "
            "bytes received: a stalled upload gets 408 and is dropped."),
    Setting("network", "body_min_rate", "byte_size", "16KiB",
            "Bytes per second a request body must average once body_timeout has passed."),
    Setting("network", "max_connections", "integer(1, 1000000)", "1000",
            "Open connections, all clients together; past it a new connection is answered "
            "503 and closed. Held below the process's open-file limit."),
    Setting("network", "max_client_connections", "integer(1, 1000000)", "64",
            "Open connections from one client address; past it 429 with Retry-After."),
    Setting("network", "max_body_bytes_in_flight", "byte_size", "256MiB",
            "Request bodies being received, all connections together (counted from "
            "Content-Length, or as chunks arrive); past it 503 with Retry-After."),
    Setting("network", "trusted_proxies", "string_list", "",
            "Addresses or networks of proxies in front (nginx: 127.0.0.1): their "
            "connections count toward max_connections only, not as one client, and "
            "the client of a request is what they say in client_address_header."),
    Setting("network", "client_address_header", "option('x-forwarded-for', 'x-real-ip')",
            "x-forwarded-for",
            "The one header in which trusted_proxies name a request's client: "
            "x-forwarded-for (the rightmost entry that is not a trusted proxy: each proxy "
            "must append the address it saw, as nginx's $proxy_add_x_forwarded_for "
            "does) or x-real-ip (which the proxy must set, never pass through)."),
    Setting("replication", "publish", "endpoints", "",
            "ZeroMQ endpoint(s) other nodes connect to for this node's writes.",
            example="tcp://127.0.0.1:8086"),
    Setting("replication", "subscribe", "endpoints", "",
            "ZeroMQ endpoint(s) of the nodes whose writes this node applies.",
            example="tcp://127.0.0.1:9086"),
    Setting("replication", "sync", "endpoints", "",
            "Endpoint(s) of this node's catch-up service; empty means each publish "
            "endpoint with its TCP port + 1. Peers find it the same way from their "
            "subscribe endpoints."),
    Setting("replication", "forward", "boolean", "true",
            "Re-publish the writes this node applies from its peers, keeping their "
            "origin. Needed in a ring; in a full mesh set false, so that each write "
            "crosses each link once."),
    Setting("replication", "state_path", "string", "",
            "Directory of the journal and the peer state; empty means .imagepipe under "
            "[images] path (hidden: never served)."),
    Setting("replication", "retention", "duration", "7d",
            "How long journal records and delete tombstones are kept when a peer has not "
            "acknowledged them. Units: s, m, h, d."),
    Setting("replication", "high_water_mark", "integer(10, 10000000)", "1000",
            "Messages ZeroMQ may queue per peer and socket before it drops (the peer then "
            "catches up from the journal)."),
    Setting("replication", "max_message_bytes", "byte_size", "256MiB",
            "Largest message part accepted from a peer; a peer sending more is disconnected."),
    Setting("replication", "curve_secret_key", "string", "",
            "This node's CURVE secret key file (from `imagepipe keygen`); setting it "
            "turns on authentication and encryption of every replication socket."),
    Setting("replication", "curve_public_keys", "string", "",
            "Directory of the public key files of the peers allowed to connect."),
    Setting("replication", "curve_subscribe_keys", "string_list", "",
            "Public key file of each subscribe endpoint, in the same order."),
    Setting("images", "path", "directory", None,
            "Root of the stored tree; every client path is relative to it. Must exist. "
            "Relative paths are taken from the directory of this file.",
            example="var/images"),
    Setting("images", "umask", "umask", "0022",
            "Umask applied to created images (0666 & ~umask) and directories "
            "(0777 & ~umask). Octal with a leading 0 (0022) or decimal (18)."),
    Setting("images", "io_threads", "integer(0, 256)", "0",
            "Threads doing the image and file work of XML-RPC calls (store, move, delete, "
            "info); on-the-fly renders have their own ([http] render_threads). 0 means "
            "one per CPU."),
    Setting("images", "render_processes", "integer(0, 256)", "0",
            "Child processes that render on-the-fly requests; 0 renders in the worker "
            "threads. Python's interpreter lock keeps one process from using more than "
            "about 1.8 cores: set it to the number of CPUs on a busy image server."),
    Setting("images", "render_process_memory", "byte_size", "512MiB",
            "A render process whose resident memory is over this after a job (a huge "
            "image leaves the heap large) is replaced by a fresh one."),
    Setting("images", "max_pending", "integer(0, 100000)", "0",
            "Calls that may wait for a free thread; more get fault 1003 (busy). "
            "0 means 4 x io_threads."),
    Setting("images", "transliterate_paths", "boolean", "false",
            "Turn every client path into ASCII with Unidecode (zdjęcia/żółw.jpg -> "
            "zdjecia/zolw.jpg), identically for store, move, delete and info."),
    Setting("images", "engine", "option(" + ", ".join(repr(n) for n in engines.NAMES) + ")",
            "wand",
            "Imaging engine: wand (ImageMagick, the default) or pillow (faster, same "
            "results)."),
    Setting("images", "quality", "integer(1, 100)", "85",
            "Default encoder quality for JPEG, WebP, AVIF and HEIC when a call does not "
            "give options.quality."),
    Setting("images", "max_pixels", "pixel_count", "50MP",
            "Largest source accepted, in pixels, all frames of an animation summed; "
            "checked from the header before decoding. Also caps each output. "
            "Units: P, KP, MP, GP."),
    Setting("images", "max_frames", "integer(1, 100000)", "500",
            "Most frames accepted in an animated source; a GIF's are counted from its "
            "blocks before decoding."),
    Setting("images", "max_metadata_bytes", "byte_size", "4MiB",
            "Largest metadata of a source once inflated (PNG text and colour profile "
            "chunks are zlib streams: a megabyte can inflate to a gigabyte); checked "
            "before decoding."),
    Setting("images", "max_result_side", "integer(1, 65535)", "8192",
            "Longest side of any picture made (stored variant or on-the-fly result), "
            "enlarged or not; the source stored unchanged does not count "
            "(imgproxy's max_result_dimension)."),
    Setting("images", "max_result_pixels", "pixel_count", "25MP",
            "Most pixels in one frame of any picture made, as max_result_side."),
    Setting("http", "render_threads", "integer(0, 256)", "0",
            "Threads rendering on-the-fly misses (and /health), apart from the "
            "io_threads of the XML-RPC calls, so that reads never take a write's thread "
            "or queue place. 0 means one per CPU, and at least render_processes."),
    Setting("http", "max_render_pending", "integer(0, 100000)", "0",
            "Renders (origin fetches included) that may wait for a render thread; more "
            "get 429 with Retry-After. 0 means 4 x render_threads."),
    Setting("http", "max_client_renders", "integer(1, 100000)", "6",
            "Renders one client address may have in flight (cache hits do not count; "
            "requests joining an identical render in flight do not either); past it "
            "429 with Retry-After. Behind [network] trusted_proxies the address is the "
            "proxy's X-Real-IP or X-Forwarded-For. A browser opens up to 6 connections "
            "to a host."),
    Setting("http", "cache_path", "string", "",
            "Directory of the on-the-fly result cache; empty means .imagepipe/cache "
            "under [images] path. Relative paths are taken from the directory of this "
            "file. nginx serves its files/ subdirectory (examples/nginx/)."),
    Setting("http", "cache_max_bytes", "byte_size", "1GiB",
            "Size budget of the result cache; the least recently used results are "
            "removed beyond it. 0 turns the cache off: every request renders."),
    Setting("http", "max_age", "duration", "1d",
            "Cache-Control max-age of on-the-fly results. Units: s, m, h, d."),
    Setting("http", "accel_redirect", "string", "",
            "Behind nginx: answer rendered results with X-Accel-Redirect to this "
            "internal location prefix (e.g. /_imagepipe/) instead of sending the bytes.",
            example="/_imagepipe/"),
    Setting("http", "quality", "integer(1, 100)", "80",
            "Encoder quality of on-the-fly results when the URL gives none."),
    Setting("http", "auto_avif", "boolean", "false",
            "Let format auto pick AVIF (before WebP) for clients that accept it. AVIF is "
            "several times slower to encode."),
    Setting("http", "sign_keys", "string", "",
            "File of URL signing keys, one per line (hex, at least 32 digits); the "
            "first signs (`imagepipe sign`), all verify. Empty: URLs are not signed.",
            example="signing.keys"),
    Setting("http/native", "enabled", "boolean", "true",
            "Serve imagepipe's own URL grammar (docs/on-the-fly.md)."),
    Setting("http/native", "prefix", "prefix", "/r/",
            "URL prefix of this dialect: one path segment between slashes."),
    Setting("http/native", "source", "option('tree', 'origins')", "tree",
            "Where sources come from: the stored tree, or the [[origins]] HTTP servers."),
    Setting("http/native", "presets_only", "boolean", "false",
            "Refuse every option that does not come from a preset (HTTP 403)."),
    Setting("http/openross", "enabled", "boolean", "false",
            "Serve OpenRoss URLs: /W/H/MODE/path."),
    Setting("http/openross", "prefix", "prefix", "/openross/",
            "URL prefix of this dialect."),
    Setting("http/openross", "source", "option('tree', 'origins')", "tree",
            "Where sources come from: tree or origins."),
    Setting("http/openross", "whitelist", "sizes", "",
            "The only sizes served, e.g. 72x72, 200x250; empty serves any size up to "
            "max_size."),
    Setting("http/openross", "max_size", "size", "2000x2000",
            "Largest width x height served (OpenRoss's MAX_SIZE)."),
    Setting("http/openross", "modes", "string_list", "resize, resizecomp, crop, trimresize",
            "Modes served, of resize, resizecomp, crop and trimresize."),
    Setting("http/wanelo", "enabled", "boolean", "false",
            "Serve wanelo image-server URLs: /ns/aaa/bbb/ccc/<23 hex>/WxH-qN.ext."),
    Setting("http/wanelo", "prefix", "prefix", "/wanelo/",
            "URL prefix of this dialect."),
    Setting("http/wanelo", "source", "option('tree', 'origins')", "tree",
            "Where sources come from: tree or origins."),
    Setting("http/wanelo", "namespaces", "string_list", "",
            "Namespaces served; empty serves any."),
    Setting("http/wanelo", "max_width", f"integer(1, {MAX_SIDE})", "2000",
            "Widest output served."),
    Setting("http/wanelo", "max_height", f"integer(1, {MAX_SIDE})", "2000",
            "Tallest output served."),
    Setting("http/phizer", "enabled", "boolean", "false",
            "Serve phizer URLs: /size-code[/tlx x tly/brx x bry]/name.ext."),
    Setting("http/phizer", "prefix", "prefix", "/phizer/",
            "URL prefix of this dialect."),
    Setting("http/phizer", "source", "option('tree', 'origins')", "origins",
            "Where sources come from: tree or origins (phizer's master and slaves)."),
    Setting("http/dirpy", "enabled", "boolean", "false",
            "Serve Dirpy URLs: /path?resize=...&crop=...&pad=...&transpose=...&save=..."),
    Setting("http/dirpy", "prefix", "prefix", "/dirpy/",
            "URL prefix of this dialect."),
    Setting("http/dirpy", "source", "option('tree', 'origins')", "tree",
            "Where sources come from: tree or origins."),
    Setting("http/origins", "master", "string", "",
            "Base URL sources are fetched from (http or https), for mounts with "
            "source = origins.", example="https://images.example.com/originals/"),
    Setting("http/origins", "fallbacks", "string_list", "",
            "More base URLs, all asked at once when the master misses or fails."),
    Setting("http/origins", "allow", "string_list", "",
            "Host names or networks (10.0.0.0/8) fetched from although private, "
            "loopback or link-local; every other such address is refused."),
    Setting("http/origins", "connect_timeout", "float(0.1, 600)", "5",
            "Seconds to connect to an origin (then 504)."),
    Setting("http/origins", "read_timeout", "float(0.1, 3600)", "10",
            "Seconds for an origin's whole answer once connected (then 504)."),
    Setting("http/origins", "max_bytes", "byte_size", "50MiB",
            "Largest source read from an origin, counted as it arrives (then 413)."),
    Setting("http/origins", "max_redirects", "integer(0, 20)", "3",
            "Redirects followed per fetch (then 502)."),
    Setting("imagemagick", "convert", "string", "/usr/bin/convert",
            "Accepted for compatibility and unused: imagepipe calls ImageMagick "
            "in-process through Wand."),
    Setting("imagemagick/env", "MAGICK_THREAD_LIMIT", "integer(1, 256)", "1",
            "Threads ImageMagick may use inside one operation. Keep 1 and raise "
            "io_threads instead."),
    Setting("imagemagick/env", "MAGICK_TIME_LIMIT", "integer(1, 86400)", "60",
            "Seconds one call may spend in ImageMagick; checked after each decode, "
            "resize and encode, the call then fails with fault 1004. Per call, not "
            "per process."),
    Setting("imagemagick/env", "MAGICK_MEMORY_LIMIT", "byte_size", "256MiB",
            "Pixel cache memory per process before ImageMagick falls back to mapped "
            "files."),
    Setting("imagemagick/env", "MAGICK_MAP_LIMIT", "byte_size", "512MiB",
            "Memory-mapped pixel cache before ImageMagick falls back to disk."),
    Setting("imagemagick/env", "MAGICK_DISK_LIMIT", "byte_size", "1GiB",
            "Disk pixel cache; an image needing more fails (fault 1004)."),
    Setting("imagemagick/env", "MAGICK_AREA_LIMIT", "pixel_count", "128MP",
            "Largest image area kept in memory; larger images use the disk cache."),
    Setting("imagemagick/env", "MAGICK_WIDTH_LIMIT", "pixel_count", "16KP",
            "Widest image ImageMagick accepts."),
    Setting("imagemagick/env", "MAGICK_HEIGHT_LIMIT", "pixel_count", "16KP",
            "Tallest image ImageMagick accepts."),
)

SECTION_DESCRIPTIONS = {
    "network": "XML-RPC listener and the read-only view of the tree.",
    "replication": "ZeroMQ replication between nodes.",
    "images": "The stored tree and the image work.",
    "http": "On-the-fly resizing over HTTP and its result cache (docs/on-the-fly.md).",
    "http/native": "imagepipe's own URL grammar: name:value options, then the source.",
    "http/native/presets": "Named presets: name = option segments, e.g. "
                           "thumb = w:150/h:150/m:fill.",
    "http/openross": "OpenRoss URLs.",
    "http/wanelo": "wanelo image-server URLs; sources at ns/aaa/bbb/ccc/<hash>/original.",
    "http/phizer": "phizer URLs.",
    "http/phizer/sizes": "Size codes: code = W x H constraint, constraint square, max, "
                         "portrait or landscape, e.g. thumb = 100x100 square.",
    "http/dirpy": "Dirpy URLs.",
    "http/origins": "HTTP servers holding the sources of mounts with source = origins.",
    "imagemagick": "ImageMagick (through Wand).",
    "imagemagick/env": "ImageMagick resource limits. Other MAGICK_* variables (for "
                       "example MAGICK_TMPDIR) are exported to ImageMagick as given.",
}

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


def _client_limits(filename, net):
    """The ``ClientLimits`` of ``[network]``: the proxies parsed, the totals under the fd limit."""
    exempt = []
    for entry in net["trusted_proxies"]:
        try:
            exempt.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{filename}: [network] trusted_proxies = {entry!r}: expected "
                              f"an address or a network (127.0.0.1, 10.0.0.0/8)") from None
    # Room for the files, sockets and render processes of the node itself.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = max(16, soft - 128) if soft != resource.RLIM_INFINITY else net["max_connections"]
    return ClientLimits(head_timeout=net["head_timeout"], body_timeout=net["body_timeout"],
                        body_min_rate=max(1, net["body_min_rate"]),
                        max_connections=min(net["max_connections"], room),
                        max_client_connections=net["max_client_connections"],
                        max_body_bytes=net["max_body_bytes_in_flight"], exempt=tuple(exempt),
                        header=net["client_address_header"])


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
}

_EXPECTED = {
    "string": "a text value",
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


# Sections whose keys are the operator's own names, each value checked as given.
FREE_SECTIONS = {"http/native/presets": "string", "http/phizer/sizes": "string"}


def _lookup(section):
    return {s.key: s for s in SETTINGS if s.section == section}


def configspec():
    """The configobj spec derived from ``SETTINGS``."""
    lines = []
    for section in _sections():
        depth = section.count("/") + 1
        name = section.split("/")[-1]
        lines.append("[" * depth + name + "]" * depth)
        if section in FREE_SECTIONS:
            lines.append(f"__many__ = {FREE_SECTIONS[section]}")
        for setting in _lookup(section).values():
            default = "" if setting.default is None else f", default={setting.default!r}"
            check = setting.check
            if "(" in check:
                lines.append(f"{setting.key} = {check[:-1]}{default})")
            else:
                lines.append(f"{setting.key} = {check}({default.lstrip(', ')})")
    return lines


def _sections():
    """Every section in file order; a free section right after its parent's keys."""
    seen = []
    for setting in SETTINGS:
        if setting.section not in seen:
            seen.append(setting.section)
    for free in FREE_SECTIONS:
        seen.insert(seen.index(free.rpartition("/")[0]) + 1, free)
    return seen


@dataclass(frozen=True)
class ClientLimits:
    """How much of the node connections and clients may hold ([network] settings)."""

    head_timeout: float = 30.0
    body_timeout: float = 30.0
    body_min_rate: int = 16 << 10  # bytes per second a body must average past body_timeout
    max_connections: int = 1000
    max_client_connections: int = 64
    max_body_bytes: int = 256 << 20  # request bodies in flight, all connections
    exempt: tuple = ()  # ip_network: addresses (a local proxy) held only to the totals
    header: str = "x-forwarded-for"  # what a trusted proxy names the client in

    def exempts(self, host):
        """True when ``host`` (an address string) is held to the totals only."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:  # a unix socket: no client address
            return True
        return any(address in network for network in self.exempt)

    def client(self, host, real_ip=None, forwarded_for=None):
        """The client address a request from ``host`` counts against.

        From a trusted proxy it is what the proxy says in the one header
        ``header`` names: the rightmost ``X-Forwarded-For`` entry that is
        not itself a trusted proxy (each proxy appends the address it saw,
        so the entries before are the client's own claims), or its
        ``X-Real-IP``; else the proxy.  From anyone else the headers are
        ignored.  ``None`` for a unix socket with no header to go by.
        """
        if host is not None and not self.exempts(host):
            return host
        if self.header == "x-real-ip":
            candidates = [real_ip or ""]
        else:
            candidates = reversed((forwarded_for or "").split(","))
        for entry in candidates:
            address = _address(entry)
            if address is not None and not self.exempts(str(address)):
                return str(address)
        return host


def _address(text):
    """The IP address ``text`` holds, or None."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class NetworkSettings:
    """The ``[network]`` section."""

    interface: str
    port: int
    auth: str
    auth_file: str
    max_request_bytes: int
    serve_images: bool
    shutdown_timeout: float
    access_log: str = "-"
    clients: ClientLimits = ClientLimits()


@dataclass(frozen=True)
class ReplicationSettings:
    """The ``[replication]`` section, with derived endpoints and paths resolved."""

    publish: tuple
    subscribe: tuple
    sync: tuple
    state_path: str
    retention: float
    high_water_mark: int
    max_message_bytes: int
    curve_secret_key: str
    curve_public_keys: str
    curve_subscribe_keys: tuple
    forward: bool = True
    heartbeat: float = 1.0

    @property
    def enabled(self):
        """True when this node publishes or subscribes."""
        return bool(self.publish or self.subscribe)


@dataclass(frozen=True)
class ImageSettings:
    """The ``[images]`` section, with the automatic values resolved."""

    path: str
    umask: int
    io_threads: int
    max_pending: int
    render_processes: int
    render_process_memory: int
    transliterate_paths: bool
    engine: str
    quality: int
    max_pixels: int
    max_frames: int
    max_metadata_bytes: int
    max_result_side: int
    max_result_pixels: int


@dataclass(frozen=True)
class MountSettings:
    """One enabled URL dialect: where it is mounted, its sources and its own settings."""

    dialect: str  # native, openross, wanelo, phizer, dirpy
    prefix: str  # "/r/"
    source: str  # "tree" or "origins"
    settings: object  # the dialect module's settings value


@dataclass(frozen=True)
class HttpSettings:
    """The ``[http]`` section: the result cache, signing, and the enabled mounts."""

    cache_path: str
    cache_max_bytes: int
    max_age: float
    accel_redirect: str
    quality: int
    auto_avif: bool
    sign_keys: str
    mounts: tuple  # MountSettings
    origins: object  # imagepipe.web.origins.OriginSettings, or None
    render_threads: int = 1
    max_render_pending: int = 4
    max_client_renders: int = 6


@dataclass(frozen=True)
class MagickSettings:
    """The ``[imagemagick]`` section: resource limits and extra environment."""

    convert: str
    thread_limit: int
    time_limit: int
    limits: tuple  # ((wand limit name, value), ...)
    environment: tuple  # ((MAGICK_* name, value), ...) exported as given


@dataclass(frozen=True)
class Config:
    """A loaded, validated configuration."""

    filename: str
    network: NetworkSettings
    replication: ReplicationSettings
    images: ImageSettings
    imagemagick: MagickSettings
    http: HttpSettings = None


_WAND_LIMITS = {
    "MAGICK_MEMORY_LIMIT": "memory",
    "MAGICK_MAP_LIMIT": "map",
    "MAGICK_DISK_LIMIT": "disk",
    "MAGICK_AREA_LIMIT": "area",
    "MAGICK_WIDTH_LIMIT": "width",
    "MAGICK_HEIGHT_LIMIT": "height",
}


def load(filename):
    """Read, validate and type the config file; raise ``ConfigError`` on any problem."""
    try:
        raw = ConfigObj(filename, configspec=configspec(), file_error=True,
                        interpolation=False, encoding="utf-8")
    except (OSError, ConfigObjError) as error:
        raise ConfigError(f"{filename}: cannot read config: {_first_line(error)}") from None
    result = raw.validate(Validator(CHECKS), preserve_errors=True)
    if result is not True:
        for sections, key, error in flatten_errors(raw, result):
            section = "/".join(sections)
            if key is None:
                raise ConfigError(f"{filename}: [{section}] section is missing or malformed")
            if section in FREE_SECTIONS:
                raise ConfigError(f"{filename}: [{section}] {key}: expected a text value")
            setting = _lookup(section)[key]
            if error is False:
                raise ConfigError(f"{filename}: [{section}] {key} is missing: expected "
                                  f"{expected(setting)}")
            value = _raw_value(raw, sections, key)
            raise ConfigError(f"{filename}: [{section}] {key} = {value!r}: expected "
                              f"{expected(setting)}")
    _refuse_unknown(filename, raw)
    return _typed(filename, raw)


def _raw_value(raw, sections, key):
    node = raw
    for name in sections:
        node = node[name]
    return node.get(key)


def _refuse_unknown(filename, raw):
    for sections, name in get_extra_values(raw):
        section = "/".join(sections)
        if section == "imagemagick/env" and name.startswith("MAGICK_"):
            continue
        where = f"[{section}] {name}" if sections else f"[{name}]"
        raise ConfigError(f"{filename}: {where}: unknown setting (known: "
                          f"{_known_in(section)})")


def _known_in(section):
    keys = sorted(_lookup(section)) or sorted({s.section for s in SETTINGS})
    return ", ".join(keys)


def _typed(filename, raw):
    base = os.path.dirname(os.path.abspath(filename))
    net = raw["network"]
    images = raw["images"]
    magick = raw["imagemagick"]
    env = magick["env"]

    root = os.path.join(base, images["path"])
    if not os.path.isdir(root):
        raise ConfigError(f"{filename}: [images] path = {images['path']!r}: expected "
                          f"an existing directory")
    auth_file = net["auth_file"]
    if net["auth"] != "none":
        if not auth_file:
            raise ConfigError(f"{filename}: [network] auth_file = '': expected a "
                              f"credentials file when auth = {net['auth']}")
        auth_file = os.path.join(base, auth_file)
        if not os.path.isfile(auth_file):
            raise ConfigError(f"{filename}: [network] auth_file = {net['auth_file']!r}: "
                              f"expected an existing file")
    threads = images["io_threads"] or (os.cpu_count() or 1)
    declared = _lookup("imagemagick/env")
    return Config(
        filename=filename,
        network=NetworkSettings(
            interface=net["interface"], port=net["port"], auth=net["auth"],
            auth_file=auth_file, max_request_bytes=net["max_request_bytes"],
            serve_images=net["serve_images"], shutdown_timeout=net["shutdown_timeout"],
            access_log=(net["access_log"] if net["access_log"] in ("", "-")
                        else os.path.join(base, net["access_log"])),
            clients=_client_limits(filename, net)),
        replication=_replication(filename, base, raw["replication"], os.path.realpath(root)),
        images=ImageSettings(
            path=os.path.realpath(root), umask=images["umask"], io_threads=threads,
            render_processes=images["render_processes"],
            render_process_memory=images["render_process_memory"],
            max_pending=images["max_pending"] or 4 * threads,
            transliterate_paths=images["transliterate_paths"], engine=images["engine"],
            quality=images["quality"],
            max_pixels=images["max_pixels"], max_frames=images["max_frames"],
            max_metadata_bytes=images["max_metadata_bytes"],
            max_result_side=images["max_result_side"],
            max_result_pixels=images["max_result_pixels"]),
        http=_http(filename, base, raw["http"], os.path.realpath(root),
                   PathRules(images["transliterate_paths"]), images["render_processes"]),
        imagemagick=MagickSettings(
            convert=magick["convert"],
            thread_limit=env["MAGICK_THREAD_LIMIT"],
            time_limit=env["MAGICK_TIME_LIMIT"],
            limits=tuple((wand, env[name]) for name, wand in _WAND_LIMITS.items()),
            environment=tuple((name, str(value)) for name, value in env.items()
                              if name not in declared)),
    )


def _replication(filename, base, section, root):
    from imagepipe.replication.endpoints import sync_endpoint

    def path(key):
        return os.path.join(base, section[key]) if section[key] else ""

    secret = path("curve_secret_key")
    public_dir = path("curve_public_keys")
    server_keys = tuple(os.path.join(base, p) for p in section["curve_subscribe_keys"])
    if secret:
        for key, value, check in (("curve_secret_key", secret, os.path.isfile),
                                  ("curve_public_keys", public_dir, os.path.isdir)):
            if not value or not check(value):
                raise ConfigError(f"{filename}: [replication] {key} = {section[key]!r}: "
                                  f"expected an existing "
                                  f"{'file' if check is os.path.isfile else 'directory'}")
        if len(server_keys) != len(section["subscribe"]):
            raise ConfigError(f"{filename}: [replication] curve_subscribe_keys: expected "
                              f"one public key file per subscribe endpoint "
                              f"({len(section['subscribe'])})")
    return ReplicationSettings(
        publish=section["publish"], subscribe=section["subscribe"],
        sync=section["sync"] or tuple(sync_endpoint(e) for e in section["publish"]),
        state_path=path("state_path") or os.path.join(root, ".imagepipe"),
        retention=section["retention"], high_water_mark=section["high_water_mark"],
        max_message_bytes=section["max_message_bytes"], curve_secret_key=secret,
        curve_public_keys=public_dir, curve_subscribe_keys=server_keys,
        forward=section["forward"])


DIALECTS = ("native", "openross", "wanelo", "phizer", "dirpy")


def _http(filename, base, section, root, rules, render_processes):
    """The typed ``[http]`` section; each dialect's settings built and checked here."""
    mounts, prefixes = [], {}
    for dialect in DIALECTS:
        values = section[dialect]
        if not values["enabled"]:
            continue
        where = f"{filename}: [http/{dialect}]"
        if values["prefix"] in prefixes:
            raise ConfigError(f"{where} prefix = {values['prefix']!r}: already the prefix "
                              f"of [http/{prefixes[values['prefix']]}]")
        prefixes[values["prefix"]] = dialect
        try:
            settings = _dialect_settings(dialect, values, rules)
        except ValueError as error:
            raise ConfigError(f"{where} {error}") from None
        mounts.append(MountSettings(dialect, values["prefix"], values["source"], settings))
    origins = None
    if section["origins"]["master"]:
        from imagepipe.web.origins.settings import OriginSettings

        values = section["origins"]
        try:
            origins = OriginSettings(
                master=values["master"], fallbacks=values["fallbacks"], allow=values["allow"],
                connect_timeout=values["connect_timeout"], read_timeout=values["read_timeout"],
                max_bytes=values["max_bytes"], max_redirects=values["max_redirects"])
        except ValueError as error:
            raise ConfigError(f"{filename}: [http/origins] {error}") from None
    for mount in mounts:
        if mount.source == "origins" and origins is None:
            raise ConfigError(f"{filename}: [http/{mount.dialect}] source = origins: "
                              f"expected [http/origins] master to be set")
    sign_keys = os.path.join(base, section["sign_keys"]) if section["sign_keys"] else ""
    if sign_keys and not os.path.isfile(sign_keys):
        raise ConfigError(f"{filename}: [http] sign_keys = {section['sign_keys']!r}: "
                          f"expected an existing file")
    cache = section["cache_path"]
    threads = section["render_threads"] or max(os.cpu_count() or 1, render_processes)
    return HttpSettings(
        render_threads=threads, max_render_pending=section["max_render_pending"] or 4 * threads,
        max_client_renders=section["max_client_renders"],
        cache_path=os.path.join(base, cache) if cache else os.path.join(root, ".imagepipe",
                                                                        "cache"),
        cache_max_bytes=section["cache_max_bytes"], max_age=section["max_age"],
        accel_redirect=section["accel_redirect"], quality=section["quality"],
        auto_avif=section["auto_avif"], sign_keys=sign_keys, mounts=tuple(mounts),
        origins=origins)


def _dialect_settings(dialect, values, rules):
    """The settings value of one dialect module; ``ValueError`` names the bad key."""
    from imagepipe.web.dialects import dirpy, native, openross, phizer, wanelo

    if dialect == "native":
        presets = {name: tuple(text.strip("/").split("/"))
                   for name, text in values["presets"].items()}
        settings = native.NativeSettings(presets=presets, presets_only=values["presets_only"])
        for name in presets:
            try:
                native.parse(f"preset:{name}/check.jpg", None, settings)
            except ValueError as error:
                raise ValueError(f"presets: {name} = {values['presets'][name]!r}: "
                                 f"{error}") from None
        return settings
    if dialect == "openross":
        unknown = set(values["modes"]) - set(openross.MODES)
        if unknown:
            raise ValueError(f"modes: unknown {', '.join(sorted(unknown))} (known: "
                             f"{', '.join(openross.MODES)})")
        return openross.OpenRossSettings(
            whitelist=frozenset(values["whitelist"]) if values["whitelist"] else None,
            max_size=values["max_size"], modes=frozenset(values["modes"]), path_rules=rules)
    if dialect == "wanelo":
        return wanelo.WaneloSettings(
            namespaces=frozenset(values["namespaces"]) if values["namespaces"] else None,
            max_width=values["max_width"], max_height=values["max_height"])
    if dialect == "phizer":
        sizes = {}
        for code, text in values["sizes"].items():
            match = re.fullmatch(r"\s*(\d{1,5})\s*x\s*(\d{1,5})\s+(\w+)\s*", text)
            if not match:
                raise ValueError(f"sizes: {code} = {text!r}: expected W x H constraint, "
                                 f"e.g. 100x100 square")
            sizes[code] = (int(match.group(1)), int(match.group(2)), match.group(3))
        return phizer.PhizerSettings(sizes=sizes, paths=rules)
    return dirpy.DirpySettings(paths=rules)


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def dist_text():
    """The commented sample config, generated from ``SETTINGS``."""
    out = ["# imagepipe configuration. Every key is shown with its default;",
           "# generated by `python -m imagepipe.config` from imagepipe/config.py.", ""]
    for section in _sections():
        depth = section.count("/") + 1
        name = section.split("/")[-1]
        indent = "    " * (depth - 1)
        out.append(f"{indent}{'[' * depth}{name}{']' * depth}")
        out.extend(_comment(SECTION_DESCRIPTIONS[section], indent))
        for setting in _lookup(section).values():
            out.append("")
            out.extend(_comment(setting.description, indent))
            value = setting.example if setting.example is not None else setting.default
            prefix = "# " if setting.default is not None and setting.example is not None else ""
            out.append(f"{indent}{prefix}{setting.key} = {value}")
        out.append("")
    return "\n".join(out)


def _comment(text, indent):
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(indent) + len(line) + len(word) + 3 > 86:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return [f"{indent}# {line}" for line in lines]


if __name__ == "__main__":
    sys.stdout.write(dist_text())

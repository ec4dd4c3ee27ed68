"""The OpenRoss dialect: ``W/H/MODE/path.ext``, and OpenRoss's cache file names.

OpenRoss (Lyst) serves ``/W/H/MODE/path.ext`` from nginx's cache file
``path_WxH_MODE.ext`` and renders on a miss.  Its four modes map onto a
``Transform``; the output is always JPEG at quality 90.  The resampling
filter is left at the engines' default, Lanczos, so that the same picture
asked for through another dialect shares the cached result.

The path given to ``parse`` is the one after the mount prefix, without a
leading slash: ``"200/250/crop/x/y/photo.jpg"``.  The query is ignored, as
OpenRoss ignored it (cache-busting query strings still hit the cache).
"""

from dataclasses import dataclass

from imagepipe.errors import ClientError
from imagepipe.declarations import Setting, mount_settings
from imagepipe.paths import PathRules, quoted
from imagepipe.web.dialects import NotAllowed, Request, bounded_number
from imagepipe.imaging.transform import MAX_SIDE, BadTransform, Transform

# OpenRoss's mode names, with what each makes of the W×H box.
MODES = {
    "resize": dict(mode="fit", enlarge=True),
    "resizecomp": dict(mode="pad", background="white", enlarge=True),
    "crop": dict(mode="fill", enlarge=True),
    "trimresize": dict(mode="pad", background="white", enlarge=False, trim=True),
}
FORMAT = "jpg"
QUALITY = 90


@dataclass(frozen=True)
class OpenRossSettings:
    """What one OpenRoss mount serves.

    ``whitelist``: None serves any size up to ``max_size``; otherwise a
    frozenset of ``(width, height)`` pairs, the only sizes served.
    ``max_size``: the largest ``(width, height)`` (OpenRoss's ``MAX_SIZE``).
    ``modes``: the mode names served (a subset of ``MODES``).
    ``path_rules``: the node's path policy for the source path.
    """

    whitelist: frozenset | None = None
    max_size: tuple = (2000, 2000)
    modes: frozenset = frozenset(MODES)
    path_rules: PathRules = PathRules()

    def __post_init__(self):
        if not (isinstance(self.max_size, tuple) and len(self.max_size) == 2
                and all(type(side) is int and 1 <= side <= MAX_SIDE for side in self.max_size)):
            raise ValueError(f"max_size: expected (width, height) in 1..{MAX_SIDE}, "
                             f"got {self.max_size!r}")
        if self.whitelist is not None and not (
                isinstance(self.whitelist, frozenset)
                and all(isinstance(size, tuple) and len(size) == 2 for size in self.whitelist)):
            raise ValueError(f"whitelist: expected None or a frozenset of (width, height), "
                             f"got {self.whitelist!r}")
        unknown = set(self.modes) - set(MODES)
        if not isinstance(self.modes, frozenset) or unknown:
            raise ValueError(f"modes: expected a frozenset of {', '.join(MODES)}, "
                             f"got {self.modes!r}")


SECTIONS = {"http/openross": "OpenRoss URLs."}
FREE_SECTIONS = {}
SETTINGS = mount_settings("openross", "/openross/", False,
                          "Serve OpenRoss URLs: /W/H/MODE/path.") + (
    Setting("http/openross", "whitelist", "sizes", "",
            "The only sizes served, e.g. 72x72, 200x250; empty serves any size up to "
            "max_size."),
    Setting("http/openross", "max_size", "size", "2000x2000",
            "Largest width x height served (OpenRoss's MAX_SIZE)."),
    Setting("http/openross", "modes", "string_list", "resize, resizecomp, crop, trimresize",
            "Modes served, of resize, resizecomp, crop and trimresize."),
)
READS_QUERY = False


def settings_from(values, rules):
    """``OpenRossSettings`` from ``[http/openross]``; ``ValueError`` names the bad key."""
    unknown = set(values["modes"]) - set(MODES)
    if unknown:
        raise ValueError(f"modes: unknown {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(MODES)})")
    return OpenRossSettings(
        whitelist=frozenset(values["whitelist"]) if values["whitelist"] else None,
        max_size=values["max_size"], modes=frozenset(values["modes"]), path_rules=rules)

def parse(path, query=None, settings=OpenRossSettings()):
    """``W/H/MODE/path.ext`` as a ``Request``.

    Raises ``BadTransform`` for a malformed path, an unknown mode or a size
    beyond ``max_size``, and ``NotAllowed`` for a mode that is not enabled or
    a size off the whitelist.
    """
    width, height, mode, source = _parts(path, settings)
    transform = Transform(width=width, height=height, format=FORMAT, quality=QUALITY,
                          **MODES[mode])
    return Request(source=source, transform=transform)


def cache_name(request_path, settings=OpenRossSettings()):
    """OpenRoss's cache file for ``W/H/MODE/path.ext``: ``path_WxH_MODE.ext``.

    Validated as ``parse`` validates; the extension keeps its case, since
    nginx looks the file up by the URL's own spelling.
    """
    width, height, mode, source = _parts(request_path, settings)
    name = source.rpartition("/")[2]
    stem, dot, extension = name.rpartition(".")
    try:
        return settings.path_rules.variant(source, f"_{width}x{height}_{mode}",
                                           extension if dot and stem else None,
                                           argument="path")
    except ClientError as error:
        raise BadTransform(str(error)) from None


def _parts(path, settings):
    """Width, height, mode name and clean source path of a request path."""
    parts = path.split("/", 3)
    if len(parts) < 4:
        raise BadTransform(f"expected W/H/MODE/path, got {quoted(path)}")
    width_text, height_text, mode, source = parts
    max_width, max_height = settings.max_size
    limit = f"MAX_SIZE {max_width}x{max_height}"
    width = bounded_number(width_text, "width", max_width, limit)
    height = bounded_number(height_text, "height", max_height, limit)
    if mode not in MODES:
        raise BadTransform(f"mode: expected one of {', '.join(MODES)}, got {quoted(mode)}")
    try:
        source = settings.path_rules.clean(source)
    except ClientError as error:
        raise BadTransform(str(error)) from None
    if mode not in settings.modes:
        raise NotAllowed(f"mode {mode} is not enabled here "
                         f"(enabled: {', '.join(sorted(settings.modes)) or 'none'})")
    if settings.whitelist is not None and (width, height) not in settings.whitelist:
        raise NotAllowed(f"{width}x{height} is not on the size whitelist")
    return width, height, mode, source



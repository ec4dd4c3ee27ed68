"""Bringing up ImageMagick safely: policy, environment, limits, coders.

ImageMagick reads ``policy.xml`` and ``MAGICK_*`` variables once, when Wand
is first imported, so ``start`` must run before anything imports Wand.  It
then proves that the policy is in force (each script coder is refused, or
absent from this build of ImageMagick) and finds out which optional formats
this ImageMagick can really write and read back.

``MAGICK_TIME_LIMIT`` is deliberately not handed to ImageMagick: in
ImageMagick 6 it counts from process start and aborts the whole process when
reached, which would kill a long-running server.  The engine enforces it per
call instead.
"""

import os
from dataclasses import dataclass

from imagepipe.errors import ConfigError
from imagepipe.imaging.formats import FORMATS

POLICY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy")

# Each of these must be refused by the policy (or be absent); a tiny payload
# per coder.  MVG comes first because it decodes harmlessly when the policy is
# not loaded: MSL and TEXT, when they run, can crash ImageMagick outright.
_POLICY_PROBES = (
    ("MVG", b"push graphic-context\nviewbox 0 0 1 1\npop graphic-context\n"),
    ("MSL", b"<?xml version=\"1.0\"?><image><read filename=\"x.png\"/></image>"),
    ("SVG", b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>"),
    ("TEXT", b"x"),
    ("HTTPS", b"x"),
    ("PS", b"%!PS\nshowpage\n"),
    ("PDF", b"%PDF-1.4\n"),
)

_OPTIONAL = ("avif", "heic")

# The probe only imagepipe's policy refuses: Debian's own policy.xml already
# refuses HTTPS, PS and PDF, so their refusal does not show that imagepipe's
# file (with its delegate and path rules) was loaded.
SENTINEL = "MVG"

# How ImageMagick answered one probe.  A coder the policy refuses and a coder
# this ImageMagick does not have are equally safe; one that reached its
# decoder is not (whether it then decoded the payload or choked on it).
REFUSED = "refused by the policy"
ABSENT = "not in this ImageMagick"


@dataclass(frozen=True)
class MagickStatus:
    """What start-up found: the library version, limits in force, formats, policy."""

    version: str
    limits: dict
    formats: tuple  # names of the formats that can be read and written
    refused: tuple = ()  # probed coders the policy refuses
    absent: tuple = ()  # probed coders this ImageMagick does not have


@dataclass(frozen=True)
class PolicyReport:
    """The probed coders, split by why they cannot run."""

    refused: tuple
    absent: tuple


def start(settings):
    """Prepare the environment, import Wand, apply limits and check the policy.

    Raises ``ConfigError`` when the policy is not in force.
    """
    os.environ["MAGICK_CONFIGURE_PATH"] = POLICY_DIR
    os.environ["MAGICK_THREAD_LIMIT"] = str(settings.thread_limit)
    os.environ.pop("MAGICK_TIME_LIMIT", None)
    for name, value in settings.environment:
        os.environ[name] = value
    from wand.version import MAGICK_VERSION

    apply_limits(settings)
    report = prove_policy()
    return MagickStatus(version=MAGICK_VERSION, limits=current_limits(),
                        formats=tuple(_working_formats()), refused=report.refused,
                        absent=report.absent)


# The MagickSettings whose limits are in force in this process (render
# processes receive them with every job, so a reload reaches them too).
applied = None


def apply_limits(settings):
    """Set ImageMagick's resource limits (may be called again on reload)."""
    global applied
    from wand.resource import limits

    limits["thread"] = settings.thread_limit
    for name, value in settings.limits:
        limits[name] = value
    applied = settings


def reload(config):
    """Apply a reloaded config's ImageMagick limits (the node reloads this module as a part)."""
    apply_limits(config.imagemagick)


def current_limits():
    """The limits ImageMagick reports now (a policy file may have lowered them)."""
    from wand.resource import limits

    return {name: limits[name] for name in
            ("memory", "map", "disk", "area", "width", "height", "thread")}


def prove_policy():
    """Probe every dangerous coder; the ``PolicyReport``, or ``ConfigError`` if one ran.

    Probing stops at the first coder that runs: the next one might not return.
    """
    outcomes = {}
    for coder, payload in _POLICY_PROBES:
        outcomes[coder] = probe(coder, payload)
        if outcomes[coder] not in (REFUSED, ABSENT):
            break
    return judge_policy(outcomes)


def probe(coder, payload):
    """How ImageMagick answers a request to decode ``payload`` with ``coder``.

    ``REFUSED``, ``ABSENT``, or a sentence saying that the coder ran.
    """
    from wand.exceptions import MissingDelegateError, PolicyError
    from wand.image import Image
    from wand.version import formats

    try:
        with Image(blob=payload, format=coder):
            pass
    except PolicyError:
        return REFUSED
    except MissingDelegateError:
        if coder not in formats():
            return ABSENT
        return "reached a coder this ImageMagick has, which found no delegate"
    except Exception as error:  # noqa: BLE001 - the coder ran: it was not refused
        return f"reached the coder, which failed with {type(error).__name__}"
    return "was decoded"


def judge_policy(outcomes):
    """The ``PolicyReport`` for ``{coder: outcome}``; ``ConfigError`` unless all are safe.

    Every coder must be refused or absent, and ``SENTINEL`` refused: when it
    is not, imagepipe's policy file was not loaded and its other rules
    (delegates, paths) are not in force either.
    """
    ran = [f"the {coder} probe {outcome}" for coder, outcome in outcomes.items()
           if outcome not in (REFUSED, ABSENT)]
    if ran:
        raise ConfigError("ImageMagick security policy is not in force: " + "; ".join(ran)
                          + " (is Wand imported before imagepipe configured it?)")
    refused = tuple(coder for coder, outcome in outcomes.items() if outcome == REFUSED)
    if SENTINEL not in refused:
        raise ConfigError(f"ImageMagick security policy is not in force: the {SENTINEL} "
                          f"probe was not refused, so imagepipe's policy.xml was not loaded")
    return PolicyReport(refused=refused,
                        absent=tuple(coder for coder, outcome in outcomes.items()
                                     if outcome == ABSENT))


def _working_formats():
    """Formats whose encoder and decoder both work on a tiny image."""
    from wand.color import Color
    from wand.image import Image
    from wand.version import formats

    available = set(formats())
    for fmt in FORMATS:
        if fmt.coder not in available:
            continue
        if fmt.name not in _OPTIONAL:
            yield fmt.name
            continue
        try:
            with Image(width=8, height=8, background=Color("red")) as probe:
                blob = probe.make_blob(fmt.coder)
            with Image(blob=blob, format=fmt.coder) as back:
                if back.size == (8, 8):
                    yield fmt.name
        except Exception:  # noqa: BLE001 - a coder that fails is simply not offered
            continue

"""Client arguments of the XML-RPC calls, validated once into typed values.

``parse_store`` accepts every argument form of the original ``store_image``
(base64 text or ``<base64>``, ``[w, h]`` or ``{suffix: [w, h]}``, scalar or
per-suffix format/composite/crop, numeric strings) and returns a
``StoreRequest``; inner code trusts it.  Every refusal is a ``ClientError``
naming the argument.
"""

import binascii
import re
import xmlrpc.client
from dataclasses import dataclass

from imagepipe.errors import ClientError
from imagepipe.imaging import EncodeOptions, VariantSpec
from imagepipe.imaging.formats import by_name
from imagepipe.imaging.geometry import Mode
from imagepipe.imaging.vocabulary import FILTERS, MAX_SIDE, is_colour
from imagepipe.paths import split_extension

MAX_VARIANTS = 64

@dataclass(frozen=True)
class Variant:
    """One file a store call writes: where, and how it is made."""

    path: str
    spec: VariantSpec


@dataclass(frozen=True)
class StoreRequest:
    """A validated ``store_image`` call."""

    data: bytes
    path: str
    variants: tuple
    options: EncodeOptions


def _absent(value):
    return value is None or value is False or value == "" or value == 0 or value in ([], {})


def decode_image(image):
    """The payload bytes from base64 text or an XML-RPC binary value."""
    if isinstance(image, xmlrpc.client.Binary):
        data = image.data
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, str):
        data = _base64(image)
    else:
        raise ClientError(f"image: expected base64 text or binary, got {type(image).__name__}")
    if not data:
        raise ClientError("image: empty payload")
    return data


def _base64(text):
    """Strictly decoded base64 text; line breaks and spaces are allowed between groups."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        pass  # most often line breaks (base64.encodebytes): retry without whitespace
    try:
        return binascii.a2b_base64("".join(text.split()), strict_mode=True)
    except (binascii.Error, ValueError):
        raise ClientError("image: Invalid image encoding, should be base64") from None


def _side(value, argument):
    if isinstance(value, bool):
        raise ClientError(f"{argument}: expected a whole number, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ClientError(f"{argument}: expected a whole number, got {value!r}"[:120])
    if not 1 <= value <= MAX_SIDE:
        raise ClientError(f"{argument}: {value} is out of range 1..{MAX_SIDE}")
    return value


def _box(value, argument):
    if _absent(value):
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ClientError(f"{argument}: Invalid dimension specification, should be a list "
                          f"with two elements (width and height)")
    return (_side(value[0], f"{argument} width"), _side(value[1], f"{argument} height"))


def _flag(value, argument):
    if value is None:
        return False
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false", ""):
        return value.strip().lower() in ("1", "true")
    raise ClientError(f"{argument}: expected 0 or 1, got {value!r}"[:120])


def _format(value, argument):
    if _absent(value):
        return None
    if not isinstance(value, str):
        raise ClientError(f"{argument}: Invalid format specification, should be a string")
    name = value.strip().lower()
    if not re.fullmatch(r"[a-z0-9]{1,10}", name) or by_name(name) is None:
        raise ClientError(f"{argument}: unsupported format {value!r} (allowed: jpg, jpeg, "
                          f"png, gif, webp, avif, heic)"[:160])
    return name


def _per_suffix(value, suffixes, argument, convert):
    """Expand a scalar or a dict keyed like ``size`` into {suffix: value}.

    A key missing from the dict means the default (keep the format, no
    composite, no crop), as in the original; a key that ``size`` lacks is an
    error.
    """
    if isinstance(value, dict):
        extra = sorted(set(value) - set(suffixes), key=str)
        if extra:
            raise ClientError(f"{argument}: key {extra[0]!r} is not a key of size"[:200])
        return {key: convert(value.get(key), f"{argument}[{key!r}]") for key in suffixes}
    single = convert(value, argument)
    return dict.fromkeys(suffixes, single)


def parse_options(options, default_quality):
    """The ``options`` struct as ``EncodeOptions`` (None when not given)."""
    if _absent(options):
        return None
    if not isinstance(options, dict):
        raise ClientError("options: expected a struct")
    unknown = sorted(set(options) - {"quality", "progressive", "strip", "background", "filter"})
    if unknown:
        raise ClientError(f"options: unknown option {unknown[0]!r} (known: background, "
                          f"filter, progressive, quality, strip)"[:160])
    quality = options.get("quality", default_quality)
    if isinstance(quality, str) and quality.strip().isdigit():
        quality = int(quality)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ClientError(f"options.quality: expected a whole number 1..100, got {quality!r}"[:120])
    background = options.get("background", "white")
    if not isinstance(background, str) or not (
            is_colour(background)):
        raise ClientError(f"options.background: expected a colour such as '#ffffff', "
                          f"'rgb(255,255,255)' or 'white', got {background!r}"[:160])
    filter_name = options.get("filter", "lanczos")
    if not isinstance(filter_name, str) or filter_name.lower() not in FILTERS:
        raise ClientError(f"options.filter: unknown filter {filter_name!r} (e.g. lanczos, "
                          f"mitchell, catrom, triangle, point)"[:160])
    return EncodeOptions(
        quality=quality,
        progressive=_flag(options.get("progressive", False), "options.progressive"),
        strip=_flag(options.get("strip", True), "options.strip"),
        background=background.lower(),
        filter=filter_name.lower(),
    )


def parse_store(rules, default_quality, image, path, format=None, size=None,
                composite=0, crop=0, options=None):
    """Validate the arguments of ``store_image`` into a ``StoreRequest``."""
    clean = rules.clean(path, "path")
    if isinstance(size, dict):
        if not size:
            raise ClientError("size: the dict of variants is empty")
        if len(size) > MAX_VARIANTS:
            raise ClientError(f"size: {len(size)} variants exceed the limit of {MAX_VARIANTS}")
        boxes = {suffix: _box(box, f"size[{suffix!r}]") for suffix, box in size.items()}
    else:
        if any(isinstance(v, dict) for v in (format, composite, crop)):
            raise ClientError("size: a dict of format, composite or crop needs a dict of "
                              "sizes with the same keys")
        boxes = {"": _box(size, "size")}
    formats = _per_suffix(format, boxes, "format", _format)
    pads = _per_suffix(composite, boxes, "composite", _flag)
    crops = _per_suffix(crop, boxes, "crop", _flag)
    for suffix, box in boxes.items():
        if box is None and (pads[suffix] or crops[suffix]):
            raise ClientError(f"{'composite' if pads[suffix] else 'crop'}: Composite and crop "
                              f"options require a size specification")
    encode = parse_options(options, default_quality)
    ext_format = by_name(split_extension(clean.rsplit("/", 1)[-1])[1])

    variants = []
    seen = {}
    for suffix, box in boxes.items():
        named = formats[suffix]
        target = rules.variant(clean, suffix, named, f"size[{suffix!r}]" if suffix else "path")
        if target in seen:
            raise ClientError(f"size: variants {seen[target]!r} and {suffix!r} would both "
                              f"write {target!r}")
        seen[target] = suffix
        mode = Mode.PAD if pads[suffix] else Mode.CROP if crops[suffix] else Mode.FIT
        fmt = by_name(named) if named else ext_format
        verbatim = box is None and named is None and encode is None
        variants.append(Variant(target, VariantSpec(box, mode, fmt, verbatim)))
    return StoreRequest(
        data=decode_image(image),
        path=clean,
        variants=tuple(variants),
        options=encode or EncodeOptions(quality=default_quality),
    )


def parse_move(rules, src, dst):
    """The clean ``(src, dst)`` pairs of a ``move_image`` call."""
    sources = rules.clean_many(src, "src_path")
    targets = rules.clean_many(dst, "dst_path")
    if isinstance(src, (list, tuple)) != isinstance(dst, (list, tuple)):
        raise ClientError("dst_path: give a list of paths when src_path is a list, "
                          "and a single path otherwise")
    if len(set(targets)) != len(targets):
        raise ClientError("dst_path: the same destination appears twice")
    if len(sources) != len(targets):
        raise ClientError(f"dst_path: Number of source paths should match number of "
                          f"destination paths ({len(sources)} != {len(targets)})")
    return list(zip(sources, targets))


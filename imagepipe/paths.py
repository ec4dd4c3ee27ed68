"""The one place that turns a client path into a safe path under the root.

A clean path is a ``str`` of ``/``-separated components relative to the root:
NFC-normalised (and ASCII when transliteration is on), with no empty, ``.``,
``..`` or dot-leading components, no backslash, no control character and no
component over 255 bytes.  Variant paths (suffix and format applied) are
built here too, and checked again as a whole: the final path is what counts.
"""

import posixpath
import unicodedata
from dataclasses import dataclass

from unidecode import unidecode

from imagepipe.errors import ClientError

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_PATHS_PER_CALL = 1000


def quoted(value):
    """``value`` as an error message shows it: its repr, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_control(char):
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


@dataclass(frozen=True)
class PathRules:
    """Path policy of one node: whether to transliterate to ASCII."""

    transliterate: bool = False

    def clean(self, raw, argument="path"):
        """Return ``raw`` as a clean relative path or raise ``ClientError``."""
        if not isinstance(raw, str):
            raise ClientError(f"{argument}: expected a string, got {type(raw).__name__}")
        path = unicodedata.normalize("NFC", raw)
        if self.transliterate:
            path = "/".join(_ascii(part) for part in path.split("/"))
        _check(path, argument)
        return path

    def clean_many(self, raw, argument="path"):
        """A path or a list of paths, as a list of clean paths."""
        if isinstance(raw, (list, tuple)):
            if not raw:
                raise ClientError(f"{argument}: the list of paths is empty")
            if len(raw) > MAX_PATHS_PER_CALL:
                raise ClientError(f"{argument}: {len(raw)} paths exceed the limit of "
                                  f"{MAX_PATHS_PER_CALL} per call")
            return [self.clean(item, f"{argument}[{index}]") for index, item in enumerate(raw)]
        return [self.clean(raw, argument)]

    def variant(self, path, suffix, extension, argument="size"):
        """The path of one variant: suffix before the extension, extension replaced.

        ``extension`` is the lower-case extension to use, or None to keep the
        path's own.  The result is checked by the full rules.
        """
        if not isinstance(suffix, str):
            raise ClientError(f"{argument}: suffix {quoted(suffix)} must be a string")
        if "/" in suffix or "\\" in suffix:
            raise ClientError(f"{argument}: suffix {quoted(suffix)} must not contain a slash")
        if self.transliterate:
            suffix = _ascii(unicodedata.normalize("NFC", suffix))
        else:
            suffix = unicodedata.normalize("NFC", suffix)
        head, name = posixpath.split(path)
        stem, ext = split_extension(name)
        if extension is not None:
            ext = extension
        name = f"{stem}{suffix}.{ext}" if ext else f"{stem}{suffix}"
        final = posixpath.join(head, name) if head else name
        _check(final, argument)
        return final


def split_extension(name):
    """Split ``name`` into stem and lower-case extension (``''`` when there is none)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, ext.lower()


def _ascii(part):
    text = unidecode(part, errors="replace", replace_str="_")
    return text.replace("/", "_").replace("\\", "_")


def _check(path, argument):
    if path == "":
        raise ClientError(f"{argument}: path is empty")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ClientError(f"{argument}: path is longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise ClientError(f"{argument}: absolute paths are not allowed: {quoted(path)}")
    if "\\" in path:
        raise ClientError(f"{argument}: backslashes are not allowed: {quoted(path)}")
    if any(_is_control(char) for char in path):
        raise ClientError(f"{argument}: control characters are not allowed: {quoted(path)}")
    for part in path.split("/"):
        if part == "":
            raise ClientError(f"{argument}: empty path components are not allowed: "
                              f"{quoted(path)}")
        if part in (".", ".."):
            raise ClientError(f"{argument}: '{part}' components are not allowed: "
                              f"{quoted(path)}")
        if part.startswith("."):
            raise ClientError(f"{argument}: components starting with '.' are not allowed: "
                              f"{quoted(path)}")
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            raise ClientError(f"{argument}: path is not valid Unicode: {quoted(path)}") from None
        if size > MAX_COMPONENT_BYTES:
            raise ClientError(f"{argument}: a path component is longer than "
                              f"{MAX_COMPONENT_BYTES} bytes: {quoted(part)}")

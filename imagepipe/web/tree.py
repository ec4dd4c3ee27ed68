"""Read-only view of the stored tree at ``/images/``.

Paths go through the same rules as client paths (so no dotfiles and no
``..``), files are opened through the ``Tree`` (so no symlink leads out of
the root), directories are never listed.  Answers carry Content-Type, ETag
and Last-Modified and honour conditional requests.
"""

import mimetypes
import os

from twisted.web import http, resource, server
from twisted.web.static import NoRangeStaticProducer

from imagepipe.errors import ClientError
from imagepipe.imaging.formats import by_name
from imagepipe.paths import split_extension
from imagepipe.web.statuses import error_page


class TreeResource(resource.Resource):
    """Serves regular files of a ``Tree``, read-only."""

    isLeaf = True

    def __init__(self, tree, rules):
        super().__init__()
        self.tree = tree
        self.rules = rules

    def reload(self, config):
        """Take a reloaded config's path rules."""
        self.rules = config.path_rules

    def render_GET(self, request):
        handle = self._open(request)
        if handle is None:
            return error_page(request, 404, "no such image")
        info = os.fstat(handle.fileno())
        request.setHeader(b"content-type", _content_type(request.postpath[-1]))
        request.setHeader(b"x-content-type-options", b"nosniff")
        tag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'.encode()
        modified = request.setLastModified(int(info.st_mtime))
        if request.setETag(tag) == http.CACHED or modified == http.CACHED:
            handle.close()
            return b""
        request.setHeader(b"content-length", str(info.st_size).encode())
        if request.method == b"HEAD":
            handle.close()
            return b""
        NoRangeStaticProducer(request, handle).start()
        return server.NOT_DONE_YET

    render_HEAD = render_GET

    def _open(self, request):
        try:
            raw = "/".join(part.decode("utf-8") for part in request.postpath)
            path = self.rules.clean(raw)
        except (UnicodeDecodeError, ClientError):
            return None
        return self.tree.open_file(path)


def _content_type(name):
    ext = split_extension(name.decode("utf-8", "replace"))[1]
    fmt = by_name(ext)
    if fmt is not None:
        return fmt.mime.encode()
    guessed = mimetypes.guess_type(f"x.{ext}")[0] if ext else None
    return (guessed or "application/octet-stream").encode()

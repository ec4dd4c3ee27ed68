"""The operator page: ``GET /`` from a browser, and the small JSON API it reads.

A browser asking ``/`` for HTML gets ``operator/index.html`` (an XML-RPC
client POSTing to ``/`` is unaffected); the page's script and stylesheet are
served from the package at ``/operator/``; it reads ``/status`` and:

* ``/operator/images?after=``: a page of stored paths (``image_manifest``);
* ``/operator/urls?path=&w=&h=&mode=&gravity=&format=&quality=``: the native
  URL for those options, and the same in each enabled dialect that can say it
  (each one checked by parsing it back to the same transform), signed when
  signing is on.

Everything is behind the XML-RPC credentials when auth is on (with
``auth = token``, the page's own files are not: they hold no data, and the
page asks for the token).
"""

import json
from importlib import resources

from twisted.logger import Logger
from twisted.web import resource

from imagepipe.errors import Busy, ImagepipeError
from imagepipe.web.statuses import answer_when_done, error_page, refused

ASSETS = {"index.html": "text/html; charset=utf-8", "operator.js": "text/javascript",
          "operator.css": "text/css"}
MODES = ("fit", "fill", "pad", "force")
GRAVITIES = ("center", "north", "south", "east", "west", "northeast", "northwest",
             "southeast", "southwest")


def asset(name):
    return resources.files("imagepipe.web").joinpath("operator", name).read_bytes()


def wants_page(request):
    """True for a browser's GET of ``/`` (it asks for HTML), not an XML-RPC client."""
    return request.method in (b"GET", b"HEAD") and b"text/html" in (
        request.getHeader(b"accept") or b"")


class _Guarded(resource.Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, rpc):
        super().__init__()
        self.rpc = rpc  # its authenticator is the one in force


class OperatorPage(_Guarded):
    """``/`` for a browser and ``/operator/<asset>``.

    With ``auth = basic`` the browser asks for the credentials before the
    page loads.  With ``auth = token`` it cannot send a bearer token on its
    own: the page (which holds no data) loads for anyone and asks for the
    token, which its script sends with every request for the node's data.
    """

    def render_GET(self, request):
        authenticator = self.rpc.authenticator
        if authenticator.scheme != "token":
            unauthorized = refused(request, authenticator)
            if unauthorized is not None:
                return unauthorized
        name = request.postpath[-1].decode("ascii", "replace") if request.postpath else ""
        name = name or "index.html"
        if name not in ASSETS:
            return error_page(request, 404, "no such resource")
        request.setHeader(b"content-type", ASSETS[name].encode())
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy",
                          b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        request.setHeader(b"x-frame-options", b"DENY")
        return asset(name)


class OperatorApi(_Guarded):
    """``/operator/images`` and ``/operator/urls`` (JSON)."""

    def __init__(self, rpc, images, workers, mounts, signer=None):
        super().__init__(rpc)
        self.images = images  # ImageStore
        self.workers = workers
        self.mounts = mounts  # [(MountSettings, dialect module)]
        self.signer = signer

    def render_GET(self, request):
        unauthorized = refused(request, self.rpc.authenticator)
        if unauthorized is not None:
            return unauthorized
        what = request.postpath[-1] if request.postpath else b""
        args = {key.decode(): values[0].decode("utf-8", "replace")
                for key, values in request.args.items()}
        try:
            if what == b"images":
                d = self.images.manifest(lambda rules: (args.get("after", "")[:4096], 200))
                d.addCallback(lambda page: {"paths": [entry[0] for entry in page["entries"]],
                                            "next": page["next"]})
            elif what == b"urls":
                d = self.workers.lookups.submit(self.urls, args)
            else:
                return error_page(request, 404, "no such resource")
        except Busy as error:
            return error_page(request, 503, str(error))
        d.addCallback(lambda answer: json.dumps(answer).encode())
        return answer_when_done(request, d, b"application/json", self.log, self.rpc.reporter)

    def urls(self, args):
        """The native URL for ``args`` and each enabled dialect's equivalent, checked."""
        path = args.get("path", "").strip("/")
        options = [f"w:{args['w']}" if args.get("w") else "", f"h:{args['h']}"
                   if args.get("h") else "", f"m:{args['mode']}" if args.get("mode") in MODES
                   else "", f"g:{args['gravity']}" if args.get("gravity") in GRAVITIES else "",
                   f"f:{args['format']}" if args.get("format") else "",
                   f"q:{args['quality']}" if args.get("quality") else "",
                   "e:1" if args.get("enlarge") == "1" else ""]
        native_options = "/".join(option for option in options if option)
        found, wanted = {}, None
        for mount, dialect in self.mounts:
            if mount.dialect == "native":
                rest = f"{native_options}/-/{path}" if native_options else f"-/{path}"
                try:
                    parsed = dialect.parse(rest, [], mount.settings)
                except ImagepipeError as error:
                    return {"error": str(error)}
                wanted = parsed.transform.canonical()
                found["native"] = self._url(mount, rest, parsed)
        if wanted is None:
            return {"error": "the native dialect is not enabled"}
        for mount, dialect in self.mounts:
            spelled = _spelling(mount.dialect, path, args)
            if spelled is None:
                continue
            rest, query = spelled
            try:
                parsed = dialect.parse(rest, query, mount.settings)
            except ImagepipeError:
                continue
            if parsed.transform.canonical() == wanted and parsed.source == path:
                found[mount.dialect] = self._url(mount, rest, parsed, query)
        return {"urls": found}

    def _url(self, mount, rest, parsed, query=()):
        from urllib.parse import urlencode

        from imagepipe.web.signing import canonical_path

        # A signature only for someone the write API knows: with auth off, anyone
        # could ask, and signing would stop meaning anything.
        signing = self.signer is not None and self.rpc.authenticator.scheme != "none"
        signature = (self.signer.sign(canonical_path(mount.source, parsed)) + "/"
                     if signing else "")
        tail = f"?{urlencode(query)}" if query else ""
        return f"{mount.prefix}{signature}{rest}{tail}"


def _spelling(dialect, path, args):
    """(path, query) of the same request in ``dialect``, when it has a way to say it."""
    width, height, mode = args.get("w"), args.get("h"), args.get("mode") or "fit"
    # OpenRoss always enlarges and writes JPEG at quality 90.
    if dialect == "openross" and width and height and mode in ("fit", "fill") \
            and args.get("format") == "jpg" and args.get("quality") == "90":
        return f"{width}/{height}/{'resize' if mode == 'fit' else 'crop'}/{path}", []
    if dialect == "dirpy" and (width or height) and mode == "fit":
        query = [("resize", f"{width or ''}x{height or ''}")]
        if args.get("format") or args.get("quality"):
            save = [f"fmt:{args['format']}"] if args.get("format") else []
            save += [f"qual:{args['quality']}"] if args.get("quality") else []
            query.append(("save", ",".join(save)))
        return path, query
    return None

"""The XML-RPC resource: thin ``xmlrpc_*`` methods that delegate to ``ImageStore``.

Bodies are parsed with defusedxml (no DTDs, entities or external
references).  ``FAULTS`` is the one table from domain errors to fault codes;
anything else is logged with a request id and answered with fault 1002,
never with a traceback or a server path.
"""

import inspect
import secrets
import time
import xmlrpc.client as xmlrpclib

from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server, xmlrpc

from imagepipe import rpc_arguments as arguments
from imagepipe.auth import Authenticator
from imagepipe.metrics import Metrics
from imagepipe.web.statuses import refused
from imagepipe.errors import Busy, ClientError, OperationFailed, TooLarge

CLIENT_ERROR = 1000
OPERATION_FAILED = 1001
INTERNAL_ERROR = 1002
BUSY = 1003
TOO_LARGE = 1004

# Deeper than any argument of the API nests (a dict of lists): what is deeper
# is refused before any code walks it recursively.
MAX_NESTING = 8

MANIFEST_PAGE = 1000  # entries of one image_manifest page, at most

FAULTS = (
    (ClientError, CLIENT_ERROR),
    (OperationFailed, OPERATION_FAILED),
    (Busy, BUSY),
    (TooLarge, TOO_LARGE),
)


def fault_for(error):
    """The ``xmlrpc.Fault`` for a domain error, or None for an unexpected one."""
    for kind, code in FAULTS:
        if isinstance(error, kind):
            return xmlrpc.Fault(code, str(error))
    return None


class ImagepipeRPC(xmlrpc.XMLRPC):
    """``store_image``, ``move_image``, ``delete_image``, ``image_info`` and ``system.*``."""

    NOT_FOUND = CLIENT_ERROR
    FAILURE = INTERNAL_ERROR
    log = Logger()

    def __init__(self, images, authenticator, metrics=None, reporter=None):
        super().__init__(allowNone=True, useDateTime=False)
        self.images = images
        self.authenticator = authenticator
        self.metrics = metrics if metrics is not None else Metrics()
        self.reporter = reporter  # imagepipe.reporting.Reporter: unexpected errors, or None
        self.answered = {}  # method -> calls answered (fault or not), for /status
        xmlrpc.addIntrospection(self)

    def reload(self, config):
        """Take a reloaded config's credentials."""
        self.authenticator = Authenticator.of(config.network)

    def render_POST(self, request):
        if _cross_site(request):
            # A browser posting a form from another site (with the operator's cached
            # credentials): refused before anything is parsed.
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"403 Forbidden: a cross-site request (its Origin is another site)\n"
        unauthorized = refused(request, self.authenticator)
        if unauthorized is not None:
            return unauthorized
        request.content.seek(0, 0)
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        request.rid = secrets.token_hex(6)
        try:
            args, method = _parse(request.content.read())
            function = self.lookupProcedure(method)
            _check_arity(method, function, args)
            _check_nesting(function, args)
        except xmlrpc.Fault as fault:
            self._cbRender(fault, request)
            return server.NOT_DONE_YET
        started = time.monotonic()
        d = defer.maybeDeferred(function, *args)
        d.addErrback(self._fault, request, method)
        d.addCallback(self._logged, request, method, started)
        d.addCallback(self._cbRender, request)
        return server.NOT_DONE_YET

    def lookupProcedure(self, procedurePath):
        if not isinstance(procedurePath, str):  # system.methodHelp(5) asks for one too
            raise xmlrpc.Fault(CLIENT_ERROR, f"method: expected a method name (a string), "
                                             f"got {type(procedurePath).__name__}")
        try:
            return super().lookupProcedure(procedurePath)
        except xmlrpc.NoSuchFunction:
            raise xmlrpc.Fault(CLIENT_ERROR, f"no such method: {procedurePath!r}"[:120]) from None

    def _fault(self, failure, request, method):
        fault = failure.value if isinstance(failure.value, xmlrpc.Fault) else fault_for(failure.value)
        if fault is None:
            self.log.failure("{method} failed [request {rid}]", failure,
                             method=method, rid=request.rid)
            self.metrics.error(type(failure.value).__name__)
            if self.reporter is not None:
                self.reporter.report(failure, request_id=request.rid, method=method)
            fault = xmlrpc.Fault(INTERNAL_ERROR, f"internal error (request id {request.rid})")
        return fault

    def _logged(self, result, request, method, started):
        outcome = f"fault {result.faultCode}: {result.faultString}" if isinstance(
            result, xmlrpc.Fault) else "ok"
        seconds = time.monotonic() - started
        self.log.info("{method} {outcome} in {ms:.0f} ms [request {rid}]", method=method,
                      outcome=outcome, ms=1000 * seconds, rid=request.rid)
        self.metrics.rpc(method, result.faultCode if isinstance(result, xmlrpc.Fault) else 0,
                         seconds)
        self.answered[method] = self.answered.get(method, 0) + 1
        return result

    def xmlrpc_store_image(self, image, path, format=None, size=None, composite=0, crop=0,
                           options=None):
        """store_image(image, path, format=None, size=None, composite=0, crop=0, options=None)

        Store an image (base64 text or binary) at path, relative to the image
        root.  size is [width, height] or {suffix: [width, height]}; format,
        composite and crop are single values or dicts keyed like size.
        options: quality (1-100), progressive, strip, background, filter.
        Returns 'OK' once every variant is durably written.
        """
        d = self.images.store(lambda rules, quality: arguments.parse_store(
            rules, quality, image, path, format, size, composite, crop, options))
        return d.addCallback(lambda change: "OK")

    def xmlrpc_move_image(self, src_path, dst_path):
        """move_image(src_path, dst_path)

        Move an image, or a list of images to a list of equal length.
        Creates the destination directories.  Returns 'OK'.
        """
        d = self.images.move(lambda rules: arguments.parse_move(rules, src_path, dst_path))
        return d.addCallback(lambda change: "OK")

    def xmlrpc_delete_image(self, path):
        """delete_image(path)

        Delete an image or a list of images; a missing image is fine.  Returns 'OK'.
        """
        d = self.images.delete(lambda rules: rules.clean_many(path, "path"))
        return d.addCallback(lambda change: "OK")

    def xmlrpc_image_info(self, path):
        """image_info(path)

        Describe a stored image: {width, height, format, mime, frames,
        orientation, bytes, sha256, path}, and the engine that reads it
        with the formats that engine writes: {engine, engine_formats}.
        """
        return self.images.info(lambda rules: rules.clean(path, "path"))

    def xmlrpc_image_manifest(self, after="", limit=MANIFEST_PAGE):
        """image_manifest(after='', limit=1000)

        A page of what is stored: {entries: [[path, sha256, bytes], ...], next}
        for the paths after ``after`` in the node's own order; ``next`` is the
        ``after`` of the next page, '' after the last.  How ``imagepipe verify``
        compares two nodes.
        """
        def parse(rules):
            if not isinstance(after, str) or len(after) > 4096 or "\0" in after:
                raise ClientError("after: expected '' or a page's next")
            if type(limit) is not int or not 1 <= limit <= MANIFEST_PAGE:
                raise ClientError(f"limit: expected a whole number from 1 to {MANIFEST_PAGE}")
            return after, limit

        return self.images.manifest(parse)


def _cross_site(request):
    """True when a browser sent this from another site: ``Sec-Fetch-Site`` says so, or
    ``Origin`` names another host than the one asked (XML-RPC clients send neither)."""
    if (request.getHeader(b"sec-fetch-site") or b"").lower() == b"cross-site":
        return True
    origin = request.getHeader(b"origin")
    if origin is None:
        return False
    host = (request.getHeader(b"host") or b"").lower()
    return origin.lower().partition(b"://")[2].rstrip(b"/") != host


def _parse(body):
    """Method name and arguments of an XML-RPC request body, parsed safely."""
    target = xmlrpclib.Unmarshaller(use_datetime=False, use_builtin_types=False)
    parser = DefusedExpatParser(target, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
        args = target.close()
        method = target.getmethodname()
    except DefusedXmlException as error:
        raise xmlrpc.Fault(CLIENT_ERROR, f"request refused: {type(error).__name__} "
                                         f"(DTDs and entities are not allowed)") from None
    except Exception as error:  # noqa: BLE001 - any parse failure is the client's
        raise xmlrpc.Fault(CLIENT_ERROR, f"cannot parse XML-RPC request: "
                                         f"{str(error)[:120]}") from None
    if not method:
        raise xmlrpc.Fault(CLIENT_ERROR, "cannot parse XML-RPC request: no method name")
    return args, method


def _check_arity(method, function, args):
    try:
        inspect.signature(function).bind(*args)
    except TypeError:
        params = inspect.signature(function).parameters.values()
        required = sum(1 for p in params if p.default is inspect.Parameter.empty)
        takes = f"{required}" if required == len(params) else f"{required} to {len(params)}"
        noun = "argument" if takes == "1" else "arguments"
        raise xmlrpc.Fault(CLIENT_ERROR, f"{method}: takes {takes} {noun}, "
                                         f"{len(args)} given") from None


def _check_nesting(function, args):
    """Refuse an argument whose arrays and structs nest deeper than ``MAX_NESTING``."""
    names = list(inspect.signature(function).parameters)
    for index, value in enumerate(args):
        stack = [(value, 1)]
        while stack:
            value, depth = stack.pop()
            if isinstance(value, (list, tuple, dict)):
                if depth > MAX_NESTING:
                    name = names[index] if index < len(names) else f"argument {index + 1}"
                    raise xmlrpc.Fault(CLIENT_ERROR, f"{name}: arrays and structs nested "
                                                     f"deeper than {MAX_NESTING} levels")
                items = value.values() if isinstance(value, dict) else value
                stack.extend((item, depth + 1) for item in items)

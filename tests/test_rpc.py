"""The XML-RPC resource with a stand-in store: the fault table and internal errors."""

import xmlrpc.client
from io import BytesIO

import pytest
from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.web.test.requesthelper import DummyRequest

from imagepipe.auth import Authenticator
from imagepipe.errors import Busy, ClientError, OperationFailed, TooLarge
from imagepipe.rpc import ImagepipeRPC


class RaisingStore:
    """Answers every call by failing with a given exception."""

    def __init__(self, error):
        self.error = error

    def delete(self, paths):
        return defer.fail(self.error)


def call(store, method="delete_image", *args):
    request = DummyRequest([b""])
    request.method = b"POST"
    request.content = BytesIO(xmlrpc.client.dumps(args or ("a.jpg",), method).encode())
    ImagepipeRPC(store, Authenticator("none")).render_POST(request)
    return xmlrpc.client.loads(b"".join(request.written))


@pytest.mark.parametrize("error,code", [(ClientError("x"), 1000), (OperationFailed("x"), 1001),
                                        (Busy("x"), 1003), (TooLarge("x"), 1004)])
def test_domain_errors_map_to_their_fault_codes(error, code):
    with pytest.raises(xmlrpc.client.Fault) as fault:
        call(RaisingStore(error))
    assert fault.value.faultCode == code and fault.value.faultString == "x"


def test_an_unexpected_error_is_logged_with_an_id_and_answered_generically():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        with pytest.raises(xmlrpc.client.Fault) as fault:
            call(RaisingStore(RuntimeError("disk /srv/secret/path exploded")))
    finally:
        globalLogPublisher.removeObserver(events.append)
    message = fault.value.faultString
    assert fault.value.faultCode == 1002
    assert message.startswith("internal error (request id ") and "/srv" not in message
    rid = message.rsplit(" ", 1)[1].rstrip(")")
    logged = [e for e in events if e.get("log_failure") is not None]
    assert logged and logged[0]["rid"] == rid
    assert "exploded" in str(logged[0]["log_failure"].value)


def test_wrong_argument_count_is_a_client_fault():
    with pytest.raises(xmlrpc.client.Fault) as fault:
        call(RaisingStore(None), "delete_image", "a", "b")
    assert fault.value.faultCode == 1000
    assert fault.value.faultString == "delete_image: takes 1 argument, 2 given"


@pytest.mark.parametrize("headers, refused", [
    ({b"origin": b"https://evil.example", b"host": b"img.example.com"}, True),
    ({b"sec-fetch-site": b"cross-site"}, True),
    ({b"origin": b"http://img.example.com:8085", b"host": b"img.example.com:8085"}, False),
    ({}, False),  # xmlrpc.client and every other program send no Origin
])
def test_a_cross_site_post_from_a_browser_is_refused_before_parsing(headers, refused):
    request = DummyRequest([b""])
    request.method = b"POST"
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name, [value])
    request.content = BytesIO(xmlrpc.client.dumps(("a.jpg",), "delete_image").encode())
    answer = ImagepipeRPC(RaisingStore(OperationFailed("x")), Authenticator("none")).render_POST(
        request)
    if refused:
        assert request.responseCode == 403 and answer.startswith(b"403 Forbidden: a cross-site")
    else:
        with pytest.raises(xmlrpc.client.Fault, match="x"):
            xmlrpc.client.loads(b"".join(request.written))

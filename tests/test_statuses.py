"""HTTP errors in one place: every domain error keeps its status when a render process
reports it, shutting down turns a full queue into 503, and an unexpected error is logged
and answered 500 without its details."""

import inspect

import pytest
from twisted.internet import defer
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from imagepipe import errors
from imagepipe.imaging.processes import _parse_reply, _reply_error
from imagepipe.web.statuses import failed, status_of, text

DOMAIN = [kind for _, kind in inspect.getmembers(errors, inspect.isclass)
          if issubclass(kind, errors.ImagepipeError)]


def test_every_domain_error_derives_from_imagepipe_error():
    names = {kind.__name__ for kind in DOMAIN}
    assert {"BadTransform", "NotAllowed", "BadSignature", "InvalidMessage"} <= names


@pytest.mark.parametrize("kind", DOMAIN, ids=lambda kind: kind.__name__)
def test_a_render_process_reports_each_domain_error_as_itself(kind):
    with pytest.raises(errors.ImagepipeError) as raised:
        _parse_reply(_reply_error(kind.__name__, "what went wrong"))
    assert type(raised.value) is kind and str(raised.value) == "what went wrong"
    assert status_of(raised.value) == status_of(kind("what went wrong"))


@pytest.mark.parametrize("kind, status", [
    (errors.BadTransform, 400), (errors.NotAllowed, 403), (errors.BadSignature, 403),
    (errors.SourceMissing, 404), (errors.SourceTooLarge, 413), (errors.TooLarge, 422),
    (errors.ClientError, 422), (errors.Busy, 429), (errors.OriginError, 502),
    (errors.OriginTimeout, 504),
])
def test_client_facing_errors_are_never_500(kind, status):
    assert status_of(kind("x")) == status


def test_shutting_down_makes_a_full_queue_and_a_cancelled_fetch_503():
    assert status_of(errors.Busy("full"), closing=True) == 503
    assert status_of(defer.CancelledError(), closing=True) == 503
    assert status_of(errors.TooLarge("max_pixels"), closing=True) == 422


def test_an_unexpected_error_is_logged_and_answered_without_its_details():
    request = DummyRequest([b"r"])
    request.uri = b"/r/w:10/a.jpg"
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        try:
            raise KeyError("/srv/secret/path")
        except KeyError as error:
            status = failed(request, error, Logger(), Failure())
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert status == 500 and request.responseCode == 500 and request.finished
    assert b"".join(request.written) == text(500, "internal error (logged)")
    assert b"secret" not in b"".join(request.written)
    assert any(event.get("log_level") == LogLevel.critical for event in logged)


def test_an_answer_to_a_request_already_gone_writes_nothing():
    request = DummyRequest([b"r"])
    request.finish()
    failed(request, errors.Busy("full"), Logger())
    assert request.written == []

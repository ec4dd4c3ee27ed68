"""Unexpected errors reported to Sentry (``[errors] sentry_dsn`` or ``SENTRY_DSN``).

What is reported: the paths that answer fault 1002 or HTTP 500, and a
replicated change that failed to apply for a reason that is not the
change's own, each with its request id, method or URL and the node's name.
What never is: image bytes, base64 payloads, credentials, signing keys.
Frames are sent without their local variables, no request body or header is
attached (no integration that would is enabled), and every text that
reaches the event is cut short.  The SDK sends from its own thread: nothing
waits on the reactor.
"""

import sentry_sdk

_LONGEST = 300  # characters of any one text in an event


def _scrubbed(event, hint):
    """The event without what it must never carry."""
    for exception in event.get("exception", {}).get("values", ()):
        if isinstance(exception.get("value"), str):
            exception["value"] = exception["value"][:_LONGEST]
        for frame in exception.get("stacktrace", {}).get("frames", ()):
            frame.pop("vars", None)
    event.pop("request", None)
    event.pop("breadcrumbs", None)
    event.pop("extra", None)
    tags = event.get("tags") or {}
    for name, value in list(tags.items()):
        tags[name] = str(value)[:_LONGEST]
    return event


class Reporter:
    """Sends unexpected failures to the Sentry project ``dsn`` names."""

    def __init__(self, dsn, node, version, environment=None):
        self.node = node
        sentry_sdk.init(
            dsn=dsn, release=f"imagepipe@{version}", server_name=node,
            environment=environment or None, default_integrations=False,
            auto_enabling_integrations=False, include_local_variables=False,
            max_request_body_size="never", before_send=_scrubbed)  # no PII by default

    def report(self, failure, **context):
        """Report ``failure`` (a Twisted ``Failure``) tagged with ``context`` (request id, ...)."""
        error = failure.value
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("node", self.node)
            for name, value in context.items():
                scope.set_tag(name, value)
            sentry_sdk.capture_exception((type(error), error, failure.getTracebackObject()))

    def flush(self, timeout=2.0):
        """Wait up to ``timeout`` s for the events on their way (before the process exits)."""
        sentry_sdk.flush(timeout)

    def close(self, timeout=2.0):
        """Send what is on its way, then report nothing more."""
        sentry_sdk.get_client().close(timeout)

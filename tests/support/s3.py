"""A real S3 API server for the tests, and a proxy in front of it that can fail on purpose.

By default the tests start ``moto_server`` (PyPI ``moto[server]``) on a free
port.  To run the same tests against another S3 server (MinIO, Ceph RGW,
...), set ``IMAGEPIPE_TEST_S3_ENDPOINT`` to its URL and
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` to keys that may create
buckets there; the tests use only the S3 API.

``FailingProxy`` forwards HTTP to the server and can refuse connections (the
server is gone) or answer a chosen request with an error (one variant's
upload fails), recording every request it saw.
"""

import http.client
import os
import secrets
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support.net import free_port, wait_listening

ENDPOINT_VARIABLE = "IMAGEPIPE_TEST_S3_ENDPOINT"
MOTO = str(Path(sys.executable).with_name("moto_server"))


class S3Server:
    """The S3 API server of a test session: a moto_server process, or the one named."""

    def __init__(self, directory, auth=False):
        self.directory = Path(directory)
        self.process = None
        self.external = os.environ.get(ENDPOINT_VARIABLE)
        if self.external:
            self.endpoint = self.external.rstrip("/")
            self.keys = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
            return
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.keys = ("testing", "testing")
        env = dict(os.environ)
        if auth:  # every request needs credentials IAM knows
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.logfile = self.directory / "moto.log"
        self._log = open(self.logfile, "ab")
        self.process = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env)
        wait_listening(self.process, self.port, self.log, name="moto_server")

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def client(self, endpoint=None):
        """A boto3 client of the server (or of ``endpoint``, a proxy in front of it)."""
        import boto3

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.keys[0], aws_secret_access_key=self.keys[1])

    def new_bucket(self):
        """A bucket of its own for one test."""
        name = f"imagepipe-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket):
        """{key: bytes} of every object in ``bucket`` (one deleted while listing is left out)."""
        client = self.client()
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket) for item in page.get("Contents", ())]
        found = {}
        for key in keys:
            try:
                found[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except client.exceptions.NoSuchKey:
                continue
        return found

    def settings(self, bucket, endpoint=None, **more):
        """The ``[s3]`` section of a node using ``bucket`` (through ``endpoint`` if given)."""
        return {"bucket": bucket, "endpoint_url": endpoint or self.endpoint,
                "addressing_style": "path", "access_key_id": self.keys[0],
                "secret_access_key": self.keys[1], "connect_timeout": 1, "read_timeout": 5,
                "max_attempts": 2, **more}

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
            self._log.close()


class FailingProxy:
    """An HTTP proxy in front of ``upstream`` (host:port) that fails what it is told to."""

    def __init__(self, upstream_endpoint):
        host, _, port = upstream_endpoint.split("//", 1)[1].partition(":")
        self.upstream = (host, int(port or 80))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.seen = []  # (method, path) of every request forwarded or failed
        self.failing = []  # (method, path part, status): answered with that error instead
        self._server = None
        self.up()

    def fail(self, method, path_part, status=500):
        """Answer every ``method`` request whose path holds ``path_part`` with ``status``."""
        self.failing.append((method, path_part, status))

    def up(self):
        """Accept connections (again, on the same port)."""
        proxy = self

        class Handler(_Forwarding):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self):
        """Refuse connections, as a stopped server does (open ones are closed)."""
        self._server.shutdown()
        self._server.server_close()
        for handler in list(_Forwarding.open):
            if handler.owner is self:
                handler.close_now()

    def close(self):
        if self._server is not None:
            self.down()
            self._server = None


class _Forwarding(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner = None
    open = set()

    def setup(self):
        super().setup()
        _Forwarding.open.add(self)

    def finish(self):
        _Forwarding.open.discard(self)
        super().finish()

    def close_now(self):
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def log_message(self, *args):
        pass

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.owner.seen.append((self.command, self.path))
        for method, part, status in self.owner.failing:
            if self.command == method and part in self.path:
                error = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError"
                         b"</Code><Message>failed on purpose</Message></Error>")
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
        upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=30)
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in ("connection", "expect")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        # A HEAD's length is the object's, not that of the (empty) body.
        self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

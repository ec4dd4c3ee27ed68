"""[network] listen: endpoint descriptions checked at load, and real TCP, TLS and unix listeners."""

import http.client
import json
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.request
import xmlrpc.client
from pathlib import Path

import pytest
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.testing import MemoryReactor

from imagepipe import config, listening
from imagepipe.errors import ConfigError
from support.decoding import opened
from support.net import free_port, wait_for
from support.unix import UnixHTTPConnection, UnixTransport, unix_accepts
from support.samples import picture
from support.server import ROOT, TWISTD, b64, render_config
from support.reactor import Reactor
from support.tls import client_context, server_certificate


def load(tmp_path, **network):
    path = tmp_path / "imagepipe.ini"
    path.write_text(render_config({"network": network, "images": {"path": str(tmp_path)}}))
    return config.load(str(path))


def test_without_listen_the_interface_and_port_are_one_tcp_description(tmp_path):
    loaded = load(tmp_path, interface="0.0.0.0", port=8090)
    assert loaded.network.listen == ("tcp:8090:interface=0.0.0.0",)


def test_an_ipv6_interface_is_quoted_for_the_endpoint_parser():
    (description,) = listening.descriptions("f.ini", (), "::1", 8085)
    reactor = MemoryReactor()
    serverFromString(reactor, description).listen(None)
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [(8085, "::1")]


def test_listen_takes_several_descriptions_and_leaves_interface_and_port_aside(tmp_path):
    loaded = load(tmp_path, port=8090, listen="tcp:9000:interface=127.0.0.1, unix:/run/x.sock")
    assert loaded.network.listen == ("tcp:9000:interface=127.0.0.1", "unix:/run/x.sock")


@pytest.mark.parametrize("description,fragment", [
    ("tcp:eighty", "expected an endpoint description such as tcp:8085:interface=127.0.0.1"),
    ("tcp", "(missing 1 required positional argument: 'port')"),
    ("tcp:8085:colour=red", "(got an unexpected keyword argument 'colour')"),
    ("pigeon:8085", "(Unknown endpoint type: 'pigeon')"),
    ("ssl:8443:privateKey=/nonexistent/key.pem", "cannot read /nonexistent/key.pem: "
                                                 "No such file or directory"),
    ("systemd:domain=INET:index=0", "systemd passed no such socket"),
])
def test_a_description_that_does_not_parse_is_a_one_line_error(tmp_path, description,
                                                               fragment):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, listen=description)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'imagepipe.ini'}: [network] listen = "
                              f"{description!r}: ")
    assert fragment in message and "\n" not in message


def test_a_description_listed_twice_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"listen = 'tcp:9000': listed twice"):
        load(tmp_path, listen="tcp:9000, tcp:9000")


def test_metrics_listen_is_checked_the_same_way_and_named(tmp_path):
    path = tmp_path / "imagepipe.ini"
    path.write_text(render_config({"images": {"path": str(tmp_path)},
                                   "metrics": {"listen": "tcp:9464:interface=127.0.0.1"}}))
    assert config.load(str(path)).operations.metrics_listen == ("tcp:9464:interface=127.0.0.1",)
    path.write_text(render_config({"images": {"path": str(tmp_path)},
                                   "metrics": {"listen": "tcp:ninety"}}))
    with pytest.raises(ConfigError, match=r"\[metrics\] listen = 'tcp:ninety': expected an "
                                          r"endpoint description"):
        config.load(str(path))


def test_when_one_description_cannot_listen_the_others_are_closed_at_once():
    reactor = Reactor(taken={9002})
    outcome = []
    listening.listen(reactor, ["tcp:9001", "tcp:9002", "tcp:9003"], None).addBoth(outcome.append)
    (failure,) = outcome  # before listen() returned: start-up can exit with it
    assert failure.check(listening.ListenFailed)
    assert failure.getErrorMessage() == ("Couldn't listen on any:9002: [Errno 98] Address "
                                         "already in use.")
    assert sorted(reactor.stopped) == [9001, 9003]


def test_several_descriptions_listen_in_order():
    outcome = []
    listening.listen(Reactor(), ["tcp:9001", "unix:/run/x.sock"], None).addBoth(outcome.append)
    (ports,) = outcome
    assert [listening.where(d, port) for d, port in ports.items()] == [
        "0.0.0.0:9001 (tcp)", "/run/x.sock (unix)"]


def test_twistd_refuses_an_unparseable_description_as_a_usage_error(tmp_path):
    filename = tmp_path / "imagepipe.ini"
    filename.write_text(render_config({"network": {"listen": "tcp:eighty"},
                                       "images": {"path": str(tmp_path)}}))
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "imagepipe", "-c", str(filename)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert f" -n: {filename}: [network] listen = 'tcp:eighty': expected an endpoint " \
           f"description" in lines[-1]
    assert "Traceback" not in result.stdout + result.stderr


def other_port(*taken):
    """A free port that is none of ``taken``."""
    while True:
        port = free_port()
        if port not in taken:
            return port


def health(opener):
    """The JSON of GET /health through ``opener(path) -> (status, body)``."""
    status, body = opener("/health")
    assert status == 200, body
    return json.loads(body)


def test_a_tcp_description_listens_there_and_not_on_port(make_server):
    node = make_server()
    port = other_port(node.port)
    node.sections["network"]["listen"] = f"tcp:{port}:interface=127.0.0.1"
    node.start(wait=False)
    node.wait_listening(port)
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/")
    assert proxy.store_image(b64(picture(40, 30)), "tcp/a.jpg", "", [20, 20]) == "OK"
    assert opened((node.root / "tcp/a.jpg").read_bytes()).size == (20, 15)
    assert f"listening on 127.0.0.1:{port} (tcp)" in node.log()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", node.port)) != 0


def test_tls_serves_xmlrpc_and_health(make_server, tmp_path):
    paths = server_certificate(tmp_path)
    node = make_server()
    port = free_port()
    node.sections["network"]["listen"] = (
        f"ssl:{port}:interface=127.0.0.1:privateKey={quoteStringArgument(str(paths['key']))}"
        f":certKey={quoteStringArgument(str(paths['cert']))}")
    node.start(wait=False)
    node.wait_listening(port)
    context = client_context(paths["ca"])
    proxy = xmlrpc.client.ServerProxy(f"https://127.0.0.1:{port}/", context=context)
    assert proxy.store_image(b64(picture(40, 30)), "tls/a.jpg", "", [20, 20]) == "OK"
    assert opened((node.root / "tls/a.jpg").read_bytes()).size == (20, 15)

    def over_tls(path):
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context,
                                    timeout=30) as response:
            return response.status, response.read()

    assert all(check["ok"] for check in health(over_tls)["checks"])
    assert f"listening on 127.0.0.1:{port} (ssl)" in node.log()


def test_tls_refuses_a_client_that_does_not_trust_the_certificate(make_server, tmp_path):
    paths = server_certificate(tmp_path)
    node = make_server()
    port = free_port()
    node.sections["network"]["listen"] = (f"ssl:{port}:interface=127.0.0.1:"
                                          f"privateKey={paths['key']}:certKey={paths['cert']}")
    node.start(wait=False)
    node.wait_listening(port)
    (tmp_path / "other").mkdir()
    stranger = server_certificate(tmp_path / "other")
    proxy = xmlrpc.client.ServerProxy(f"https://127.0.0.1:{port}/",
                                      context=client_context(stranger["ca"]))
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        proxy.store_image(b64(picture(8, 8)), "tls/refused.jpg")
    assert node.files() == []


@pytest.fixture
def socket_dir():
    """A directory with a short path: a unix socket's path is at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ip-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_unix(node, path):
    def accepting():
        if node.process.poll() is not None:
            raise AssertionError(f"imagepipe exited ({node.process.returncode}):\n{node.log()}")
        return unix_accepts(path)
    wait_for(accepting, what=f"unix socket {path}")


def over_unix(path):
    def opener(target):
        connection = UnixHTTPConnection(path)
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
    return opener


def test_a_unix_socket_serves_xmlrpc_and_health(make_server, socket_dir):
    path = socket_dir / "imagepipe.sock"
    node = make_server(network__listen=f"unix:{path}:mode=660")
    node.start(wait=False)
    wait_unix(node, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=UnixTransport(path))
    assert proxy.store_image(b64(picture(40, 30)), "unix/a.jpg", "", [20, 20]) == "OK"
    assert opened((node.root / "unix/a.jpg").read_bytes()).size == (20, 15)
    assert all(check["ok"] for check in health(over_unix(path))["checks"])
    assert f"listening on {path} (unix)" in node.log()


def test_tcp_and_unix_listen_together_and_both_close_on_sigterm(make_server, socket_dir):
    path = socket_dir / "imagepipe.sock"
    node = make_server()
    node.sections["network"]["listen"] = f"tcp:{node.port}:interface=127.0.0.1, unix:{path}"
    node.start()
    wait_unix(node, path)
    assert node.proxy().store_image(b64(picture(8, 8)), "both/tcp.jpg") == "OK"
    unix = xmlrpc.client.ServerProxy("http://localhost/", transport=UnixTransport(path))
    assert unix.store_image(b64(picture(8, 8)), "both/unix.jpg") == "OK"
    assert node.stop(signal.SIGTERM) == -signal.SIGTERM
    assert not path.exists()


def test_a_reload_moves_from_one_tcp_description_to_another(make_server):
    node = make_server()
    old = free_port()
    new = other_port(old)
    node.sections["network"]["listen"] = f"tcp:{old}:interface=127.0.0.1"
    node.start(wait=False)
    node.wait_listening(old)
    node.sections["network"]["listen"] = f"tcp:{new}:interface=127.0.0.1"
    node.write_config()
    node.send(signal.SIGHUP)
    node.wait_listening(new)
    wait_for(lambda: f"stopped listening on 127.0.0.1:{old} (tcp)" in node.log(),
             what="the old port to close")
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{new}/")
    assert proxy.store_image(b64(picture(8, 8)), "moved.jpg") == "OK"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", old)) != 0


def test_a_reload_to_a_taken_port_keeps_listening_where_it_was(make_server):
    node = make_server().start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        node.sections["network"]["listen"] = f"tcp:{busy}:interface=127.0.0.1"
        node.write_config()
        node.send(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in node.log(), what="the reload")
    assert f"reload: Couldn't listen on 127.0.0.1:{busy}" in node.log()
    assert f"Still listening on 127.0.0.1:{node.port} (tcp)" in node.log()
    assert node.proxy().store_image(b64(picture(8, 8)), "stayed.jpg") == "OK"


# Execs twistd with the socket at fd 3 and LISTEN_PID set to its own pid, which
# exec keeps: what systemd does for a socket unit.  (A shell could do it with
# LISTEN_PID=$$ exec, but dash's redirections only reach fds 0 to 9.)
AS_SYSTEMD = ("import os, sys\n"
              "fd = int(sys.argv[1])\n"
              "if fd != 3:\n"
              "    os.dup2(fd, 3)\n"
              "    os.close(fd)\n"
              "os.execve(sys.argv[2], sys.argv[2:], dict(os.environ, LISTEN_PID=str(os.getpid())))\n")


@pytest.fixture
def held_socket():
    """A listening socket the test holds as systemd holds its socket unit's."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        yield held


def start_as_systemd(node, held):
    node.sections["network"]["listen"] = "systemd:domain=INET:index=0"
    fd = held.fileno()
    node.start(wait=False, through=(sys.executable, "-c", AS_SYSTEMD, str(fd)), pass_fds=(fd,),
               env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "imagepipe.socket"})
    wait_for(lambda: "listening on" in node.log() or node.process.poll() is not None,
             what="the node to take the socket")
    assert node.process.poll() is None, node.log()
    return held.getsockname()[1]


def test_a_socket_passed_as_systemd_does_serves_xmlrpc_and_health(make_server, held_socket):
    node = make_server()
    port = start_as_systemd(node, held_socket)
    assert f"listening on 127.0.0.1:{port} (systemd)" in node.log()
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/")
    assert proxy.store_image(b64(picture(40, 30)), "systemd/a.jpg", "", [20, 20]) == "OK"
    assert opened((node.root / "systemd/a.jpg").read_bytes()).size == (20, 15)

    def over_tcp(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, response.read()

    assert all(check["ok"] for check in health(over_tcp)["checks"])


def test_a_reload_keeps_the_socket_systemd_passed(make_server, held_socket):
    node = make_server()
    port = start_as_systemd(node, held_socket)
    node.sections["images"]["quality"] = 70
    node.write_config()
    node.send(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in node.log(), what="the reload")
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/")
    assert proxy.store_image(b64(picture(8, 8)), "systemd/after.jpg") == "OK"
    assert node.log().count("listening on") == 1


def test_a_restart_under_systemd_refuses_no_client(make_server, held_socket):
    first = make_server()
    port = start_as_systemd(first, held_socket)
    assert first.stop(signal.SIGTERM) == -signal.SIGTERM  # left systemd's copy listening
    waiting = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    waiting.request("GET", "/health")  # queued in the socket while no node runs
    start_as_systemd(make_server(), held_socket)
    assert waiting.getresponse().status == 200
    waiting.close()


def test_the_example_socket_unit_passes_the_one_socket_the_service_config_takes():
    socket_unit = (ROOT / "examples" / "imagepipe.socket").read_text()
    service = (ROOT / "examples" / "imagepipe.service").read_text()
    assert [line for line in socket_unit.splitlines()
            if line.startswith("ListenStream=")] == ["ListenStream=127.0.0.1:8085"]
    assert "listen = systemd:domain=INET:index=0" in service
    assert "Requires=imagepipe.socket" in service.splitlines()


def test_start_up_with_one_listener_taken_exits_with_one_line(make_server, socket_dir):
    node = make_server()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        node.sections["network"]["listen"] = (f"unix:{socket_dir / 'imagepipe.sock'}, "
                                              f"tcp:{busy}:interface=127.0.0.1")
        node.start(wait=False)
        assert node.process.wait(60) == 1
    errors = [line for line in node.log().splitlines() if "imagepipe: " in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"imagepipe: Couldn't listen on 127.0.0.1:{busy}: [Errno 98] Address already in use.")
    assert "Traceback" not in node.log()

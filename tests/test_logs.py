"""``imagepipe.logs``: where the JSON observer writes, by twistd's options."""

import json
import signal

import pytest

from twisted.logger import Logger, LogPublisher

from imagepipe.logs import json_observer


@pytest.fixture(autouse=True)
def usr1_restored():
    """A logfile's observer takes SIGUSR1 (rotation) when nothing else has: give it back."""
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


def test_with_a_logfile_events_are_json_lines_in_that_file(tmp_path):
    target = tmp_path / "node.log"
    observer = json_observer({"logfile": str(target), "nodaemon": False})
    publisher = LogPublisher(observer)
    Logger(namespace="imagepipe.test", observer=publisher).info("stored {path}", path="a.jpg")
    [line] = target.read_text().splitlines()
    event = json.loads(line)
    assert (event["text"], event["path"], event["log_namespace"]) == \
        ("stored a.jpg", "a.jpg", "imagepipe.test")
    assert event["log_level"]["name"] == "info"


def test_a_daemon_without_logfile_writes_twistd_log_in_its_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    observer = json_observer({"logfile": None, "nodaemon": False})
    Logger(observer=LogPublisher(observer)).warn("disk nearly full")
    assert json.loads((tmp_path / "twistd.log").read_text())["text"] == "disk nearly full"
    assert signal.getsignal(signal.SIGUSR1) not in (None, signal.SIG_DFL)  # rotation


def test_twistd_logger_or_syslog_is_left_in_charge():
    assert json_observer({"logger": "my.observer", "nodaemon": True}) is None
    assert json_observer({"syslog": True, "nodaemon": True}) is None

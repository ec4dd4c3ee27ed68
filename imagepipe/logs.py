"""``[network] log_format = json``: twistd's log as one JSON object per line.

twistd starts logging after the plugin has built the node, to the observer
an ``ILogObserver`` component of its application names when there is one
(the way a ``.tac`` file changes it).  ``json_observer`` makes that observer:
Twisted's own ``jsonFileLogObserver``, writing where twistd would have written
its text lines (standard output with ``-n``, else ``--logfile``, rotated on
SIGUSR1 as twistd rotates it), each event with its formatted ``text`` added
so that a log shipper shows the message.  twistd's ``--logger`` and
``--syslog`` still take precedence: with either, nothing is replaced.
"""

import signal
import sys

from twisted.logger import ILogObserver, formatEvent, jsonFileLogObserver
from twisted.python.logfile import LogFile
from zope.interface import provider


def json_observer(twistd_options, reactor=None):
    """The observer for twistd's options (the plugin's ``options.parent``), or None."""
    options = twistd_options or {}
    if options.get("logger") or options.get("syslog"):
        return None
    name = options.get("logfile")
    if name == "-" or (not name and options.get("nodaemon", True)):
        stream = sys.stdout
    else:
        stream = LogFile.fromFullPath(name or "twistd.log")
        _rotate_on_usr1(stream, reactor)
    observer = jsonFileLogObserver(stream, recordSeparator="")

    @provider(ILogObserver)
    def with_text(event):
        observer(dict(event, text=formatEvent(event)))

    return with_text


def _rotate_on_usr1(logfile, reactor):
    if signal.getsignal(signal.SIGUSR1) in (None, signal.SIG_DFL):
        if reactor is None:
            from twisted.internet import reactor

        signal.signal(signal.SIGUSR1, lambda *_: reactor.callFromThread(logfile.rotate))

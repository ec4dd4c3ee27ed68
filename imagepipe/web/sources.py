"""Where on-the-fly sources come from: the stored tree, or HTTP origins.

Every source provides ``ISource`` (``version`` and ``blocking``), and one
of the two ways of getting the bytes: ``IReadSource`` (the tree: read in
the render job, no thread hop for local files) or ``IFetchSource`` (HTTP
origins: fetched first, asynchronously).  Either raises or fails with
``SourceMissing`` when there is no such source.  An S3 source fits the
same shapes.
"""

from dataclasses import dataclass

from twisted.application.service import Service
from zope.interface import Attribute, Interface, implementer

from imagepipe.tree import version_of


@dataclass(frozen=True)
class Fetched:
    """The bytes of a source and the version they are."""

    data: bytes
    version: str
    modified: float | None = None  # seconds since the epoch, when known


class ISource(Interface):
    """Where the sources of one kind come from."""

    blocking = Attribute("True: read in the render job (IReadSource); False: fetched "
                         "first (IFetchSource).")

    def version(path):
        """A cheap text naming the current content of ``path``, checked on every request
        to tell whether a cached result is still good; None when it cannot be known
        without fetching (a cached result is then trusted until it is evicted)."""


class IReadSource(ISource):
    """Sources read synchronously, in the render job's thread."""

    tree = Attribute("The imagepipe.tree.Tree the sources are files of (engines read it).")

    def read(path):
        """``Fetched`` for ``path``; raises ``SourceMissing`` when there is none."""


class IFetchSource(ISource):
    """Sources fetched asynchronously before the render job."""

    def fetch(path):
        """A Deferred of ``Fetched`` for ``path``; fails with ``SourceMissing``, or
        ``OriginError`` / ``OriginTimeout`` / ``SourceTooLarge``."""


@implementer(IReadSource)
class TreeSource:
    """Sources are files of the stored tree (``imagepipe.tree.Tree``)."""

    blocking = True

    def __init__(self, tree):
        self.tree = tree

    def version(self, path):
        """The version of the file at ``path``, or None when there is none."""
        info = self.tree.stat(path)
        return None if info is None else version_of(info)

    def read(self, path):
        """``Fetched`` for ``path``; ``SourceMissing`` when it is not a file of the tree."""
        return Fetched(*self.tree.source(path))


@implementer(IFetchSource)
class OriginSource(Service):
    """Sources are fetched from HTTP origins (``imagepipe.web.origins.client.HttpOrigins``).

    A service: stopping it drops transfers and pooled connections.
    """

    blocking = False

    def __init__(self, origins):
        self.origins = origins

    def stopService(self):
        Service.stopService(self)
        return self.origins.close()

    def version(self, path):
        """Unknown without a request to the origin: None."""
        return None

    def fetch(self, path):
        """A Deferred of ``Fetched`` from the origins."""
        return self.origins.fetch(path)

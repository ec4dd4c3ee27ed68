"""Where on-the-fly sources come from: the stored tree, or HTTP origins.

What every source offers the renderer
(``imagepipe.web.render``):

* ``version(path)``: a cheap text naming the current content, checked on
  every request that reaches imagepipe to tell whether a cached result is
  still good; None when it cannot be known without fetching (then a cached
  result is trusted until it is evicted or invalidated);
* ``blocking``: True for a source read synchronously inside the render job
  (``read(path)``, the tree: no thread hop for local files); False for one
  fetched first (``fetch(path)``, a Deferred of ``Fetched``);
* either raises or fails with ``SourceMissing`` when there is no such source.

An S3 source fits the same shape: ``version`` from a HEAD's ETag or None,
``fetch`` a GET.
"""

from dataclasses import dataclass

from twisted.application.service import Service

from imagepipe.tree import version_of


@dataclass(frozen=True)
class Fetched:
    """The bytes of a source and the version they are."""

    data: bytes
    version: str
    modified: float | None = None  # seconds since the epoch, when known


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


class OriginSource(Service):
    """Sources are fetched from HTTP origins (``imagepipe.web.origins.HttpOrigins``).

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

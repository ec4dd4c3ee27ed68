"""Where the stored images live: one interface, two backends.

``Tree`` (``imagepipe.tree``) keeps them in a directory tree on the node's
disk; ``Bucket`` (``imagepipe.bucket``) in an S3-compatible bucket.  The
store, the on-the-fly sources and replication use either through
``IStorage``; every call blocks and runs in a worker thread.
"""

from zope.interface import Attribute, Interface


class IStorage(Interface):
    """The stored images, by clean relative path."""

    local_root = Attribute("The directory the files are under (render processes read "
                           "there), or None when they are not local files.")
    keeps_description = Attribute("True when ``write`` keeps each file's description, "
                                  "so that ``description`` answers without a read.")
    listeners = Attribute("Callables called with each ``Change`` once it is in place.")
    umask = Attribute("The mode mask of new files (a reload sets it).")

    def write(files, commit, described=None):
        """Write ``files`` [(path, bytes)] all or nothing, ``commit(change)`` entered
        once they are durable or about to be put in place; return the ``Change``."""

    def move(pairs, commit):
        """Move each (src, dst); every source must exist; return the ``Change``."""

    def delete(paths, commit):
        """Remove each path (a missing one is fine); return the ``Change``."""

    def read(path, argument="path"):
        """The bytes at ``path``; ``OperationFailed`` naming ``argument`` if none."""

    def description(path):
        """What ``image_info`` reports, kept when the file was written, or None."""

    def version(path):
        """A text naming the current content of ``path``, or None when there is none."""

    def source(path):
        """(bytes, version, mtime) of ``path`` for a render; ``SourceMissing`` if none."""

    def manifest(after, limit):
        """(entries, cursor): up to ``limit`` (path, sha256, bytes) after the cursor
        ``after``, in this storage's own order; ``cursor`` is where the next page
        starts, '' after the last."""

    def sweep():
        """Remove what earlier runs left half done; return how many."""


def announce(change, listeners, log=None):
    """Call each of ``listeners`` with ``change`` (a ``Change`` now in place); return it.

    A listener that fails is logged (``log``, a twisted Logger) and the others
    still run: the change itself succeeded.  Without ``log`` it raises.
    """
    for listener in listeners:
        try:
            listener(change)
        except Exception:  # noqa: BLE001 - the change itself succeeded
            if log is None:
                raise
            log.failure("after {operation}: a listener failed", operation=change.operation)
    return change

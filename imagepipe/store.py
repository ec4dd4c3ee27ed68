"""The stored tree: atomic writes, moves and deletes under one root.

Every directory is opened relative to the root's file descriptor with
``O_NOFOLLOW``, so a symlink inside the tree is never followed out of it.
A write puts each file in a hidden temporary file in its target directory,
fsyncs it, and renames all of them into place only once every file is
written; then the directories are fsynced.  If anything fails first, the
temporary files and the directories the call created are removed.

Each successful operation returns a ``Change``: the one description of what
was written, for whoever records writes (the replication journal).

Runs in worker threads; file modes come from ``umask`` per file, never from
the process-wide umask.
"""

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field

from imagepipe.errors import ClientError, OperationFailed

TEMP_PREFIX = ".imagepipe-tmp."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK so that a FIFO planted in the tree cannot block a reader.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True)
class Written:
    """A file a store wrote."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Change:
    """What one successful call changed in the tree."""

    operation: str  # "store", "move" or "delete"
    written: tuple = ()  # Written
    moved: tuple = ()  # (src, dst)
    deleted: tuple = ()  # paths


@dataclass
class _Opened:
    """Directory descriptors opened during one operation, closed together."""

    fds: list = field(default_factory=list)
    created: list = field(default_factory=list)  # (parent fd, name), outermost first

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _os_failure(error, argument, path):
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OperationFailed(f"{argument}: no space left on the storage device writing "
                               f"{path!r}")
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return ClientError(f"{argument}: {path!r} goes through something that is not a "
                           f"directory inside the tree")
    if error.errno == errno.EISDIR:
        return ClientError(f"{argument}: {path!r} is a directory")
    name = errno.errorcode.get(error.errno, "error")
    return OperationFailed(f"{argument}: cannot write {path!r} ({name})")


class Tree:
    """The directory tree under ``root`` that holds the stored images."""

    def __init__(self, root, umask):
        self.root = root
        self.umask = umask
        self.boot = secrets.token_hex(4)
        self._root_fd = os.open(root, _DIR_FLAGS)

    def close(self):
        """Release the root descriptor."""
        os.close(self._root_fd)

    def _directory(self, parts, opened, create):
        """Open the directory ``parts`` below the root; None when missing and not creating."""
        fd = self._root_fd
        for name in parts:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                made = False
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                    opened.created.append((fd, name))
                    made = True
                except FileExistsError:
                    pass
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                if made:
                    os.fchmod(child, 0o777 & ~self.umask)
            opened.fds.append(child)
            fd = child
        return fd

    def write(self, files):
        """Write ``files`` [(path, bytes)] all or nothing; return the ``Change``."""
        opened = _Opened()
        staged = []  # (dir fd, temp name, final name)
        written = []
        try:
            for path, data in files:
                *parts, name = path.split("/")
                try:
                    dfd = self._directory(parts, opened, create=True)
                    temp = f"{TEMP_PREFIX}{self.boot}.{secrets.token_hex(6)}"
                    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                    staged.append((dfd, temp, name))
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view):]
                        os.fchmod(fd, 0o666 & ~self.umask)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as error:
                    raise _os_failure(error, "path", path) from None
                written.append(Written(path, hashlib.sha256(data).hexdigest(), len(data)))
            for (dfd, temp, name), (path, _) in zip(staged, files):
                try:
                    os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                except OSError as error:
                    raise _os_failure(error, "path", path) from None
            staged.clear()
            self._sync(opened)
            return Change("store", written=tuple(written))
        except BaseException:
            self._undo(staged, opened)
            raise
        finally:
            opened.close()

    def _undo(self, staged, opened):
        for dfd, temp, _ in staged:
            try:
                os.unlink(temp, dir_fd=dfd)
            except OSError:
                pass
        for parent, name in reversed(opened.created):
            try:
                os.rmdir(name, dir_fd=parent)
            except OSError:
                pass

    def _sync(self, opened):
        """fsync every directory touched, and the root when it gained a directory."""
        fds = set(opened.fds)
        fds.update(parent for parent, _ in opened.created)
        for fd in fds:
            os.fsync(fd)

    def _regular(self, path, argument):
        """Raise unless ``path`` is a regular file in the tree; return its directory parts."""
        *parts, name = path.split("/")
        opened = _Opened()
        try:
            dfd = self._directory(parts, opened, create=False)
            if dfd is None:
                raise FileNotFoundError
            mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            raise OperationFailed(f"{argument}: no such image: {path!r}") from None
        except OSError as error:
            raise _os_failure(error, argument, path) from None
        finally:
            opened.close()
        if not stat.S_ISREG(mode):
            raise ClientError(f"{argument}: {path!r} is not a regular file")

    def move(self, pairs):
        """Rename each (src, dst); every source must exist first.  Atomic per file."""
        for index, (src, _) in enumerate(pairs):
            self._regular(src, f"src_path[{index}]" if len(pairs) > 1 else "src_path")
        moved = []
        for index, (src, dst) in enumerate(pairs):
            argument = f"dst_path[{index}]" if len(pairs) > 1 else "dst_path"
            if src == dst:
                moved.append((src, dst))
                continue
            opened = _Opened()
            try:
                *src_parts, src_name = src.split("/")
                *dst_parts, dst_name = dst.split("/")
                src_fd = self._directory(src_parts, opened, create=False)
                dst_fd = self._directory(dst_parts, opened, create=True)
                if src_fd is None:
                    raise OperationFailed(f"src_path: no such image: {src!r}")
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                self._sync(opened)
            except FileNotFoundError:
                self._undo((), opened)
                raise OperationFailed(f"src_path: no such image: {src!r}") from None
            except OSError as error:
                self._undo((), opened)
                raise _os_failure(error, argument, dst) from None
            finally:
                opened.close()
            moved.append((src, dst))
        return Change("move", moved=tuple(moved))

    def delete(self, paths):
        """Remove each path; a missing one is fine.  Atomic per file."""
        for path in paths:
            *parts, name = path.split("/")
            opened = _Opened()
            try:
                dfd = self._directory(parts, opened, create=False)
                if dfd is None:
                    continue
                if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                    raise ClientError(f"path: {path!r} is a directory")
                os.unlink(name, dir_fd=dfd)
                os.fsync(dfd)
            except FileNotFoundError:
                continue
            except OSError as error:
                raise _os_failure(error, "path", path) from None
            finally:
                opened.close()
        return Change("delete", deleted=tuple(paths))

    def read(self, path, argument="path"):
        """The bytes of the regular file at ``path``."""
        *parts, name = path.split("/")
        opened = _Opened()
        try:
            dfd = self._directory(parts, opened, create=False)
            if dfd is None:
                raise FileNotFoundError
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ClientError(f"{argument}: {path!r} is not a regular file")
            with os.fdopen(fd, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise OperationFailed(f"{argument}: no such image: {path!r}") from None
        except OSError as error:
            raise _os_failure(error, argument, path) from None
        finally:
            opened.close()

    def open_file(self, path):
        """A binary file object for ``path``, or None when it is not a regular file here."""
        *parts, name = path.split("/")
        opened = _Opened()
        try:
            dfd = self._directory(parts, opened, create=False)
            if dfd is None:
                return None
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except OSError:
            return None
        finally:
            opened.close()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb")

    def sweep(self):
        """Remove temporary files left by earlier runs; return how many."""
        removed = 0
        pending = [self.root]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif (entry.name.startswith(TEMP_PREFIX)
                          and not entry.name.startswith(f"{TEMP_PREFIX}{self.boot}.")):
                        try:
                            os.unlink(entry.path)
                            removed += 1
                        except OSError:
                            pass
        return removed

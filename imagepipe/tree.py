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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from zope.interface import implementer

from imagepipe.errors import ClientError, ImagepipeError, OperationFailed, SourceMissing
from imagepipe.storage import IStorage, announce

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
    data: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class Change:
    """What one successful call changed in the tree."""

    operation: str  # "store", "move" or "delete"
    written: tuple = ()  # Written
    moved: tuple = ()  # (src, dst)
    deleted: tuple = ()  # paths

    @property
    def paths(self):
        """Every path whose content changed or went away."""
        return ([w.path for w in self.written] + [p for pair in self.moved for p in pair]
                + list(self.deleted))


@dataclass
class _Opened:
    """Directory descriptors opened during one operation, closed together."""

    fds: list = field(default_factory=list)
    created: list = field(default_factory=list)  # (parent fd, name), outermost first

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def version_of(info):
    """The version text of a tree file from its ``os.stat_result``: size and mtime."""
    return f"{info.st_size:x}-{info.st_mtime_ns:x}"


def _refuse_directory(dfd, name, argument, path):
    """Raise ``ClientError`` when ``name`` in ``dfd`` is a directory."""
    try:
        mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise ClientError(f"{argument}: {path!r} is a directory")


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


@implementer(IStorage)
class Tree:
    """The directory tree under ``root`` that holds the stored images."""

    keeps_description = False  # image_info reads the file

    def __init__(self, root, umask, log=None):
        self.root = root
        self.local_root = root
        self.umask = umask
        self.log = log  # a twisted Logger for listener failures; None: they are raised
        self.boot = secrets.token_hex(4)
        self._root_fd = os.open(root, _DIR_FLAGS)
        # Called with each Change once it is in place (from worker threads):
        # what depends on stored files, such as the result cache, forgets them.
        self.listeners = []

    def _changed(self, change):
        return announce(change, self.listeners, self.log)

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

    def write(self, files, commit=nullcontext, described=None):
        """Write ``files`` [(path, bytes)] all or nothing; return the ``Change``.

        Every file is staged (written and fsynced under a temporary name)
        first; then ``commit(change)`` is entered, the files are renamed into
        place and the directories fsynced inside it.  If staging or entering
        ``commit`` fails, nothing is left behind.
        """
        opened = _Opened()
        staged = []  # (dir fd, temp name, final name)
        written = []
        try:
            for path, data in files:
                *parts, name = path.split("/")
                try:
                    dfd = self._directory(parts, opened, create=True)
                    _refuse_directory(dfd, name, "path", path)
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
                written.append(Written(path, hashlib.sha256(data).hexdigest(), len(data), data))
            change = Change("store", written=tuple(written))
            with commit(change):
                for (dfd, temp, name), (path, _) in zip(staged, files):
                    try:
                        os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                    except OSError as error:
                        raise _os_failure(error, "path", path) from None
                staged.clear()
                self._sync(opened)
            return self._changed(change)
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

    @contextmanager
    def _parent(self, path):
        """The open directory holding ``path`` (None when it does not exist), and the name."""
        *parts, name = path.split("/")
        opened = _Opened()
        try:
            yield self._directory(parts, opened, create=False), name
        finally:
            opened.close()

    def _regular(self, path, argument):
        """Raise unless ``path`` is a regular file in the tree."""
        try:
            with self._parent(path) as (dfd, name):
                if dfd is None:
                    raise FileNotFoundError
                mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            raise OperationFailed(f"{argument}: no such image: {path!r}") from None
        except OSError as error:
            raise _os_failure(error, argument, path) from None
        if not stat.S_ISREG(mode):
            raise ClientError(f"{argument}: {path!r} is not a regular file")

    def move(self, pairs, commit=nullcontext):
        """Rename each (src, dst) inside ``commit(change)``; every source must exist.

        Sources and destinations are checked before anything moves; each
        rename is atomic.
        """
        for index, (src, dst) in enumerate(pairs):
            several = len(pairs) > 1
            self._regular(src, f"src_path[{index}]" if several else "src_path")
            self._not_directory(dst, f"dst_path[{index}]" if several else "dst_path")
        change = Change("move", moved=tuple(pairs))
        with commit(change):
            for index, (src, dst) in enumerate(pairs):
                if src != dst:
                    self._rename(src, dst, f"dst_path[{index}]" if len(pairs) > 1 else "dst_path")
        return self._changed(change)

    def _rename(self, src, dst, argument):
        opened = _Opened()
        try:
            *src_parts, src_name = src.split("/")
            *dst_parts, dst_name = dst.split("/")
            src_fd = self._directory(src_parts, opened, create=False)
            if src_fd is None:
                raise FileNotFoundError
            dst_fd = self._directory(dst_parts, opened, create=True)
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

    def _not_directory(self, path, argument):
        try:
            with self._parent(path) as (dfd, name):
                if dfd is not None:
                    _refuse_directory(dfd, name, argument, path)
        except OSError as error:
            raise _os_failure(error, argument, path) from None

    def delete(self, paths, commit=nullcontext):
        """Remove each path inside ``commit(change)``; a missing one is fine."""
        for path in paths:
            self._not_directory(path, "path")
        change = Change("delete", deleted=tuple(paths))
        with commit(change):
            for path in paths:
                self._unlink(path)
        return self._changed(change)

    def _unlink(self, path):
        try:
            with self._parent(path) as (dfd, name):
                if dfd is not None:
                    os.unlink(name, dir_fd=dfd)
                    os.fsync(dfd)
        except FileNotFoundError:
            return
        except OSError as error:
            raise _os_failure(error, "path", path) from None

    def read(self, path, argument="path"):
        """The bytes of the regular file at ``path``."""
        try:
            with self._parent(path) as (dfd, name):
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

    def description(self, path):
        """None: a tree keeps no description beside its files (``image_info`` reads them)."""
        return None

    def version(self, path):
        """The ``version_of`` the regular file at ``path``, or None when there is none."""
        info = self.stat(path)
        return None if info is None else version_of(info)

    def stat(self, path):
        """The ``os.stat_result`` of the regular file at ``path``, or None."""
        try:
            with self._parent(path) as (dfd, name):
                if dfd is None:
                    return None
                info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    def source(self, path):
        """(bytes, version, mtime) of the file at ``path``, for on-the-fly renders.

        The version (``version_of``) names its size and mtime; raises
        ``SourceMissing`` when ``path`` is not a regular file of the tree.
        """
        handle = self.open_file(path)
        if handle is None:
            raise SourceMissing(f"source: no such image: {path}")
        with handle:
            info = os.fstat(handle.fileno())
            return handle.read(), version_of(info), info.st_mtime

    def open_file(self, path):
        """A binary file object for ``path``, or None when it is not a regular file here."""
        try:
            with self._parent(path) as (dfd, name):
                if dfd is None:
                    return None
                fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb")

    def manifest(self, after, limit):
        """Up to ``limit`` (path, sha256, bytes) of regular files after ``after``, in the
        order of their path components; dotfiles and temporary files are left out."""
        cursor = tuple(after.split("/")) if after else ()
        found = []

        def walk(directory, parts):
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                return
            for name in names:
                if len(found) >= limit:
                    return
                here = (*parts, name)
                if name.startswith(".") or (cursor and here < cursor[:len(here)]):
                    continue
                path = os.path.join(directory, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue  # gone meanwhile
                if stat.S_ISDIR(info.st_mode):
                    walk(path, here)
                elif stat.S_ISREG(info.st_mode) and here > cursor:
                    relative = "/".join(here)
                    try:
                        data = self.read(relative)
                    except ImagepipeError:
                        continue  # gone meanwhile
                    found.append((relative, hashlib.sha256(data).hexdigest(), len(data)))

        walk(self.root, ())
        return found, found[-1][0] if len(found) >= limit else ""

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

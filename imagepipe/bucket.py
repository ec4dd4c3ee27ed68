"""The store on an S3-compatible bucket: the same calls as ``Tree``, through boto3.

A path is the object ``<prefix><path>``.  A write puts every variant's
object (its ``Content-Type``, the configured ``Cache-Control``, and the
description ``image_info`` reads as object metadata) and answers once S3 has
acknowledged every one; if one fails, the objects this call already wrote
are deleted and the error names the one that failed.  S3 has no
multi-object transaction: a failed call that was replacing objects leaves
those paths without an object (turn on bucket versioning to keep the old
ones).  A move is a copy, then a delete of the source.

The objects change inside ``commit(change)`` (the replication journal, which
records the change first and holds its lock meanwhile, as for the tree), so
the journal's order is the bucket's; a call that failed and left the bucket
as it was raises ``Undone``, and the journal takes its record back.  Calls on
the same path also take a per-path lock (inside the journal's, in one order).

Blocking: every method runs in a worker thread, never on the reactor.
"""

import hashlib
import threading
from contextlib import contextmanager, nullcontext

from botocore.exceptions import BotoCoreError, ClientError as S3Error
from zope.interface import implementer

from imagepipe.errors import (OperationFailed, OriginError, OriginTimeout, SourceMissing,
                              SourceTooLarge, Undone)
from imagepipe.imaging.formats import sniff
from imagepipe.storage import IStorage, announce
from imagepipe.tree import Change, Written

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DESCRIBED = ("width", "height", "format", "frames", "orientation")
_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


def s3_reason(error):
    """What S3 (or the connection to it) said, in a few words."""
    if isinstance(error, S3Error):
        details = error.response.get("Error", {})
        code = details.get("Code") or error.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", "error")
        message = details.get("Message") or ""
        return f"{code}: {message}" if message and message != code else str(code)
    return type(error).__name__ + (f": {error}" if str(error) else "")


def _is_missing(error):
    return isinstance(error, S3Error) and str(error.response.get("Error", {}).get("Code")) \
        in _MISSING


def _written(path, data):
    return Written(path, hashlib.sha256(data).hexdigest(), len(data), data)


def _is_timeout(error):
    return "Timeout" in type(error).__name__


@implementer(IStorage)
class Bucket:
    """The stored images as objects of one bucket (``client`` is a boto3 S3 client)."""

    local_root = None  # no directory: render processes get the bytes, not a path
    keeps_description = True  # image_info reads the object's metadata, not its bytes

    def __init__(self, client, name, prefix="", cache_control="", max_bytes=50 << 20,
                 log=None):
        self.client = client
        self.name = name
        self.prefix = prefix
        self.cache_control = cache_control
        self.max_bytes = max_bytes  # largest source read for on-the-fly renders
        self.log = log
        self.umask = 0  # what a reload sets on a tree; objects have no mode
        self.listeners = []  # as Tree.listeners: called with each Change once it is in place
        self._locks = {}  # path -> [Lock, holders]
        self._locks_lock = threading.Lock()

    def key(self, path):
        return self.prefix + path

    def where(self, path):
        return f"s3://{self.name}/{self.key(path)}"

    def check(self):
        """Raise ``OperationFailed`` naming the bucket and what S3 said, unless it answers."""
        try:
            self.client.head_bucket(Bucket=self.name)
            return
        except BotoCoreError as error:
            raise OperationFailed(f"bucket {self.name!r}: {s3_reason(error)}") from None
        except S3Error as error:
            failure = error
        # A HEAD answer has no body, so S3 says only its status: a listing of one key
        # says in words what is wrong (NoSuchBucket, InvalidAccessKeyId, ...).
        try:
            self.client.list_objects_v2(Bucket=self.name, MaxKeys=1)
        except (S3Error, BotoCoreError) as error:
            failure = error
        raise OperationFailed(f"bucket {self.name!r}: {s3_reason(failure)}")

    # Writing ---------------------------------------------------------------

    def write(self, files, commit=nullcontext, described=None):
        """Put ``files`` [(path, bytes)] all or nothing inside ``commit``; the ``Change``.

        ``described``: for each file, the engine's description of it (kept as
        metadata for ``image_info``), or None.  If a put fails, what this call
        wrote is deleted and ``Undone`` raised (a journal takes its record back).
        """
        written = tuple(_written(path, data) for path, data in files)
        change = Change("store", written=written)
        with commit(change), self._locked([w.path for w in written]):
            put = []
            try:
                for index, item in enumerate(written):
                    self._put(item, described[index] if described else None)
                    put.append(item.path)
            except OperationFailed as error:
                self._delete_quietly(put)
                raise Undone(str(error)) from None
        return self._changed(change)

    def _put(self, item, described):
        fmt = sniff(item.data)
        metadata = {"sha256": item.sha256}
        if described is not None:
            metadata.update({name: str(getattr(described, name)) for name in _DESCRIBED
                             if name != "format"})
            metadata["format"] = described.format.name
        extra = {"CacheControl": self.cache_control} if self.cache_control else {}
        try:
            self.client.put_object(
                Bucket=self.name, Key=self.key(item.path), Body=item.data,
                ContentType=fmt.mime if fmt else "application/octet-stream",
                Metadata=metadata, **extra)
        except (S3Error, BotoCoreError) as error:
            raise OperationFailed(f"path: cannot write {item.path!r} to "
                                  f"{self.where(item.path)}: {s3_reason(error)}") from None

    def move(self, pairs, commit=nullcontext):
        """Each (src, dst) in turn: a copy, then the source deleted (as renames are, one
        after the other); every source must exist.  A first copy that fails is ``Undone``."""
        several = len(pairs) > 1
        for index, (src, _) in enumerate(pairs):
            argument = f"src_path[{index}]" if several else "src_path"
            if self._head(src, argument) is None:
                raise OperationFailed(f"{argument}: no such image: {src!r}")
        change = Change("move", moved=tuple(pairs))
        with commit(change), self._locked([p for pair in pairs for p in pair]):
            for index, (src, dst) in enumerate(pairs):
                if src == dst:
                    continue
                try:
                    self._copy(src, dst, f"dst_path[{index}]" if several else "dst_path")
                except OperationFailed as error:
                    if index == 0:
                        raise Undone(str(error)) from None
                    raise
                self._delete_all([src], "src_path")
        return self._changed(change)

    def _copy(self, src, dst, argument):
        try:
            self.client.copy_object(Bucket=self.name, Key=self.key(dst),
                                    CopySource={"Bucket": self.name, "Key": self.key(src)},
                                    MetadataDirective="COPY")
        except (S3Error, BotoCoreError) as error:
            raise OperationFailed(f"{argument}: cannot copy {src!r} to {self.where(dst)}: "
                                  f"{s3_reason(error)}") from None

    def delete(self, paths, commit=nullcontext):
        """Delete each path's object (a missing one is fine); a request that deleted
        nothing because S3 failed is ``Undone``."""
        change = Change("delete", deleted=tuple(paths))
        with commit(change), self._locked(paths):
            self._delete_all(list(paths), "path", undone=True)
        return self._changed(change)

    def _delete_all(self, paths, argument, undone=False):
        """Delete ``paths``; with ``undone``, a first batch S3 refused whole is ``Undone``."""
        for start in range(0, len(paths), _DELETE_BATCH):
            batch = paths[start:start + _DELETE_BATCH]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": [{"Key": self.key(p)} for p in batch],
                                              "Quiet": True})
            except (S3Error, BotoCoreError) as error:
                kind = Undone if undone and start == 0 else OperationFailed
                raise kind(f"{argument}: cannot delete from bucket {self.name!r}: "
                           f"{s3_reason(error)}") from None
            failed = [e for e in answer.get("Errors", ()) if e.get("Code") not in _MISSING]
            if failed:
                raise OperationFailed(f"{argument}: cannot delete s3://{self.name}/"
                                      f"{failed[0].get('Key')}: {failed[0].get('Code')}")

    def _delete_quietly(self, paths):
        """Undo this call's writes; a failure here is logged, the first error stands."""
        if not paths:
            return
        try:
            self._delete_all(paths, "path")
        except OperationFailed as error:
            if self.log is not None:
                self.log.error("could not undo a failed write: {error}", error=str(error))

    def _changed(self, change):
        return announce(change, self.listeners, self.log)

    @contextmanager
    def _locked(self, paths):
        """Hold the lock of every path in ``paths`` (taken in one order: no deadlock)."""
        taken = []
        try:
            for path in sorted(set(paths)):
                with self._locks_lock:
                    entry = self._locks.setdefault(path, [threading.Lock(), 0])
                    entry[1] += 1
                entry[0].acquire()
                taken.append(path)
            yield
        finally:
            for path in reversed(taken):
                with self._locks_lock:
                    entry = self._locks[path]
                    entry[0].release()
                    entry[1] -= 1
                    if not entry[1]:
                        del self._locks[path]

    # Reading ---------------------------------------------------------------

    def _head(self, path, argument):
        """The HeadObject answer for ``path``, or None when there is no such object."""
        try:
            return self.client.head_object(Bucket=self.name, Key=self.key(path))
        except (S3Error, BotoCoreError) as error:
            if _is_missing(error):
                return None
            raise OperationFailed(f"{argument}: cannot read {self.where(path)}: "
                                  f"{s3_reason(error)}") from None

    def read(self, path, argument="path"):
        """The bytes of the object at ``path``."""
        try:
            answer = self.client.get_object(Bucket=self.name, Key=self.key(path))
            return answer["Body"].read()
        except (S3Error, BotoCoreError) as error:
            if _is_missing(error):
                raise OperationFailed(f"{argument}: no such image: {path!r}") from None
            raise OperationFailed(f"{argument}: cannot read {self.where(path)}: "
                                  f"{s3_reason(error)}") from None

    def description(self, path):
        """(metadata, bytes) for ``image_info``: what the object's metadata says, or None."""
        head = self._head(path, "path")
        if head is None:
            raise OperationFailed(f"path: no such image: {path!r}")
        metadata = head.get("Metadata", {})
        if not all(name in metadata for name in (*_DESCRIBED, "sha256")):
            return None
        described = {name: metadata[name] for name in _DESCRIBED}
        for name in ("width", "height", "frames", "orientation"):
            described[name] = int(described[name])
        return dict(described, sha256=metadata["sha256"], bytes=head["ContentLength"])

    def version(self, path):
        """The object's ETag, or None when there is no object; ``OriginError`` if S3 fails."""
        try:
            head = self.client.head_object(Bucket=self.name, Key=self.key(path))
        except (S3Error, BotoCoreError) as error:
            if _is_missing(error):
                return None
            raise self._source_failure(error, path) from None
        return head["ETag"].strip('"')

    def source(self, path):
        """(bytes, version, mtime) of the object at ``path``, for on-the-fly renders."""
        try:
            answer = self.client.get_object(Bucket=self.name, Key=self.key(path))
            length = answer.get("ContentLength", 0)
            if length > self.max_bytes:
                answer["Body"].close()
                raise SourceTooLarge(f"source: {path} is {length} bytes, more than "
                                     f"[s3] max_bytes ({self.max_bytes})")
            data = answer["Body"].read(self.max_bytes + 1)
        except (S3Error, BotoCoreError) as error:
            if _is_missing(error):
                raise SourceMissing(f"source: no such image: {path}") from None
            raise self._source_failure(error, path) from None
        if len(data) > self.max_bytes:
            raise SourceTooLarge(f"source: {path} is more than [s3] max_bytes "
                                 f"({self.max_bytes})")
        return data, answer["ETag"].strip('"'), answer["LastModified"].timestamp()

    def _source_failure(self, error, path):
        kind = OriginTimeout if _is_timeout(error) else OriginError
        return kind(f"source: {self.where(path)}: {s3_reason(error)}")

    def manifest(self, after, limit):
        """Up to ``limit`` (path, sha256, bytes) after ``after``, in S3's key order; the
        sha256 from each object's metadata (read and hashed where it has none)."""
        try:
            answer = self.client.list_objects_v2(
                Bucket=self.name, Prefix=self.prefix, MaxKeys=limit,
                **({"StartAfter": self.key(after)} if after else {}))
        except (S3Error, BotoCoreError) as error:
            raise OperationFailed(f"after: cannot list bucket {self.name!r}: "
                                  f"{s3_reason(error)}") from None
        found, path = [], after
        for item in answer.get("Contents", ()):
            path = item["Key"][len(self.prefix):]
            if not path or path.endswith("/"):
                continue  # a "folder" marker, not an image
            head = self._head(path, "path")
            if head is None:
                continue  # gone meanwhile
            sha256 = head.get("Metadata", {}).get("sha256")
            if sha256 is None:
                sha256 = hashlib.sha256(self.read(path)).hexdigest()
            found.append((path, sha256, item["Size"]))
        return found, path if answer.get("IsTruncated") else ""

    def sweep(self):
        """Nothing to sweep: a bucket has no temporary objects."""
        return 0

    def close(self):
        self.client.close()


def client_for(settings):
    """A boto3 S3 client for ``settings`` (``S3Settings``): timeouts, retries, credentials."""
    import boto3
    import botocore.config
    import botocore.session

    core = botocore.session.Session()
    if settings.credentials_file:
        core.set_config_variable("credentials_file", settings.credentials_file)
    session = boto3.session.Session(botocore_session=core, region_name=settings.region)
    config = botocore.config.Config(
        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        max_pool_connections=settings.max_connections,
        s3={"addressing_style": settings.addressing_style},
        # Checksums only where S3 requires them: stores other than AWS differ in the
        # newer ones, and each object's sha256 is kept as metadata anyway.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required")
    keys = {}
    if settings.access_key_id:
        keys = {"aws_access_key_id": settings.access_key_id,
                "aws_secret_access_key": settings.secret_access_key}
    return session.client("s3", endpoint_url=settings.endpoint_url or None, config=config,
                          **keys)


def open_bucket(settings, log=None):
    """The ``Bucket`` of ``settings``, once S3 has answered for it (``OperationFailed`` if not)."""
    bucket = Bucket(client_for(settings), settings.bucket, settings.prefix,
                    settings.cache_control, settings.max_bytes, log)
    bucket.check()
    return bucket

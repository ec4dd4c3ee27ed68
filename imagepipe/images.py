"""The image store operations behind the API: validate, render, write.

``ImageStore`` is what every protocol calls.  Each operation is admitted by
the worker pool (or refused as busy) and runs its blocking part in a worker
thread; every change it makes to the tree is committed inside ``commit``
(the replication journal, when replication is on) and described by the
``Change`` it returns.
"""

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass

from imagepipe import request as requests
from imagepipe.errors import ClientError
from imagepipe.paths import PathRules


@dataclass(frozen=True)
class StoreSettings:
    """The reloadable part of the store's behaviour."""

    rules: PathRules
    quality: int


class ImageStore:
    """store / move / delete / info over a ``Tree``, an engine and a ``WorkerPool``."""

    def __init__(self, tree, engine, workers, settings, commit=nullcontext):
        self.tree = tree
        self.engine = engine
        self.workers = workers
        self.settings = settings
        self.commit = commit  # context for each change's commit (the replication journal)

    def _submit(self, function, *args):
        return self.workers.writes.submit(function, self.settings, *args)

    def store(self, *args):
        """``store_image`` arguments -> Deferred of the ``Change``."""
        return self._submit(self._store, args)

    def _store(self, settings, args):
        call = requests.parse_store(settings.rules, settings.quality, *args)
        blobs = self.engine.render(call.data, [v.spec for v in call.variants], call.options)
        return self.tree.write([(v.path, blob) for v, blob in zip(call.variants, blobs)],
                               self.commit)

    def move(self, src, dst):
        """``move_image`` arguments -> Deferred of the ``Change``."""
        return self._submit(self._move, src, dst)

    def _move(self, settings, src, dst):
        sources = settings.rules.clean_many(src, "src_path")
        targets = settings.rules.clean_many(dst, "dst_path")
        if isinstance(src, (list, tuple)) != isinstance(dst, (list, tuple)):
            raise ClientError("dst_path: give a list of paths when src_path is a list, "
                              "and a single path otherwise")
        if len(set(targets)) != len(targets):
            raise ClientError("dst_path: the same destination appears twice")
        if len(sources) != len(targets):
            raise ClientError(f"dst_path: Number of source paths should match number of "
                              f"destination paths ({len(sources)} != {len(targets)})")
        return self.tree.move(list(zip(sources, targets)), self.commit)

    def delete(self, paths):
        """``delete_image`` arguments -> Deferred of the ``Change``."""
        return self._submit(self._delete, paths)

    def _delete(self, settings, paths):
        return self.tree.delete(settings.rules.clean_many(paths, "path"), self.commit)

    def info(self, path):
        """Deferred of a dict describing the stored image at ``path``."""
        return self.workers.writes.submit(self._info, self.settings, path)

    def _info(self, settings, path):
        clean = settings.rules.clean(path, "path")
        data = self.tree.read(clean)
        try:
            described = self.engine.inspect(data)
        except ClientError:
            raise ClientError(f"path: {clean!r} is not an image imagepipe can read") from None
        return {
            "path": clean,
            "width": described.width,
            "height": described.height,
            "format": described.format.name,
            "mime": described.format.mime,
            "frames": described.frames,
            "orientation": described.orientation,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "engine": self.engine.name,
            "engine_formats": sorted(self.engine.formats),
        }

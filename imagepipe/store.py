"""The image store operations behind the API: validate, render, write.

``ImageStore`` is what every protocol calls: each operation takes a
``parse(rules, ...)`` from the protocol that turns its arguments into typed
values (clean paths, a ``StoreRequest``) in the worker, so the store knows
no protocol and no argument is decoded on the reactor.  Each operation is
admitted by the worker pool (or refused as busy) and runs in a worker
thread; every change it makes to the storage is committed inside ``commit``
(the replication journal, when replication is on) and described by the
``Change`` it returns.
"""

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass

from imagepipe.errors import ClientError
from imagepipe.imaging.formats import by_name
from imagepipe.paths import PathRules


@dataclass(frozen=True)
class StoreSettings:
    """The reloadable part of the store's behaviour."""

    rules: PathRules
    quality: int

    @classmethod
    def of(cls, config):
        """The settings a loaded ``Config`` asks for."""
        return cls(rules=config.path_rules, quality=config.images.quality)


class ImageStore:
    """store / move / delete / info over a storage (``IStorage``: a ``Tree`` or a
    ``Bucket``), an engine and a ``WorkerPool``."""

    def __init__(self, storage, engine, workers, settings, commit=nullcontext):
        self.storage = storage
        self.engine = engine
        self.workers = workers
        self.settings = settings
        self.commit = commit  # context for each change's commit (the replication journal)

    def reload(self, config):
        """Take a reloaded config's path rules, quality, umask and image limits."""
        self.settings = StoreSettings.of(config)
        self.storage.umask = config.images.umask
        self.engine.limits = config.image_limits

    def _submit(self, function, *args):
        return self.workers.writes.submit(function, self.settings, *args)

    def store(self, parse):
        """Render and write one call's variants: a Deferred of the ``Change``.

        ``parse(rules, quality)`` gives the ``StoreRequest``; it runs in the
        worker with the settings in force, so that decoding an upload's
        payload never runs on the reactor.
        """
        return self._submit(self._store, parse)

    def _store(self, settings, parse):
        call = parse(settings.rules, settings.quality)
        blobs = self.engine.render(call.data, [v.spec for v in call.variants], call.options)
        described = ([self.engine.inspect(blob) for blob in blobs]
                     if self.storage.keeps_description else None)
        return self.storage.write([(v.path, blob) for v, blob in zip(call.variants, blobs)],
                               self.commit, described)

    def move(self, parse):
        """Rename each clean ``(src, dst)`` that ``parse(rules)`` gives: a Deferred of the
        ``Change``.  Like every ``parse`` here, it runs in the worker (a thousand paths
        are cleaned there, not on the reactor)."""
        return self._submit(lambda settings: self.storage.move(parse(settings.rules),
                                                            self.commit))

    def delete(self, parse):
        """Delete each clean path ``parse(rules)`` gives (a missing one is fine): a
        Deferred of the ``Change``."""
        return self._submit(lambda settings: self.storage.delete(parse(settings.rules),
                                                              self.commit))

    def manifest(self, parse):
        """Deferred of one page of the storage's manifest (``image_manifest``)."""
        def page(settings):
            after, limit = parse(settings.rules)
            entries, cursor = self.storage.manifest(after, limit)
            return {"entries": [list(entry) for entry in entries], "next": cursor}
        return self._submit(page)

    def info(self, parse):
        """Deferred of a dict describing the stored image at the path ``parse(rules)`` gives."""
        return self._submit(self._info, parse)

    def _info(self, settings, parse):
        clean = parse(settings.rules)
        kept = self.storage.description(clean)
        if kept is not None:
            mime = by_name(kept["format"]).mime
            return dict(path=clean, **kept, mime=mime, engine=self.engine.name,
                        engine_formats=sorted(self.engine.formats))
        data = self.storage.read(clean)
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

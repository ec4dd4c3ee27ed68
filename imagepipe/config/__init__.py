"""Every setting of imagepipe, declared once, and the loading of a config file.

One module per idea:

- ``imagepipe.declarations`` (outside the package, so that a dialect declaring its
  section loads none of this): the ``Setting`` shape and ``mount_settings``;
- ``settings``: the node's own settings, and ``declared()``, the whole list with
  each URL dialect's section (declared in its module, ``imagepipe.web.dialects``);
- ``checks``: our value types and units, and what each accepts in words;
- ``spec``: the configobj spec and ``imagepipe.ini.dist`` (``python -m imagepipe.config``);
- ``model``: the typed, frozen ``Config`` and its sections;
- ``loading``: ``load(filename)``, the one-line ``ConfigError``, checks across fields.
"""

from imagepipe.config.loading import load
from imagepipe.config.model import (ClientLimits, Config, HttpSettings, ImageSettings,
                                    MagickSettings, MountSettings, NetworkSettings,
                                    ReplicationSettings, S3Settings)
from imagepipe.config.settings import declared
from imagepipe.config.spec import dist_text

__all__ = ["load", "declared", "dist_text", "Config", "ClientLimits", "HttpSettings",
           "ImageSettings", "MagickSettings", "MountSettings", "NetworkSettings",
           "ReplicationSettings", "S3Settings"]

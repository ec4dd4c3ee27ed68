"""The shape of a setting declaration, for every module that declares settings.

The node's own settings are declared in ``imagepipe.config.settings``; each
URL dialect declares its section in its own module (``imagepipe.web.dialects``)
with ``mount_settings`` and its own keys.  This module imports nothing, so a
pure parser declaring its settings loads no part of the config loading.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One configuration key: where it lives, its type, default and meaning."""

    section: str  # "network", or "imagemagick/env" for a subsection
    key: str
    check: str  # a configobj check, possibly one of ours (imagepipe.config.checks.CHECKS)
    default: str | None  # None: the key is required
    description: str
    example: str | None = None  # shown in the .dist file instead of the default


def mount_settings(dialect, prefix, enabled, serves, source="tree",
                   prefix_description="URL prefix of this dialect.",
                   source_description="Where sources come from: tree (the store, on its "
                                      "backend), origins or s3."):
    """The keys every dialect section has: ``enabled``, ``prefix`` and ``source``."""
    section = f"http/{dialect}"
    return (
        Setting(section, "enabled", "boolean", "true" if enabled else "false", serves),
        Setting(section, "prefix", "prefix", prefix, prefix_description),
        Setting(section, "source", "option('tree', 'origins', 's3')", source,
                source_description),
    )

"""setuptools, with editable installs that keep ``twisted/plugins`` discoverable.

twistd finds plugins by scanning every ``sys.path`` entry for a
``twisted/plugins`` directory.  setuptools' default editable install hides a
flat project behind an import hook, so the project root never reaches
``sys.path`` and ``twistd`` cannot see the imagepipe plugin.  The ``compat``
editable mode puts the root on ``sys.path`` with a ``.pth`` file; this
backend makes it the default, so a plain ``pip install -e .`` works.
"""

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 - re-export the PEP 517 hooks


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660 hook: an editable wheel in setuptools' ``compat`` mode."""
    settings = dict(config_settings or {})
    settings.setdefault("editable_mode", "compat")
    return _setuptools.build_editable(wheel_directory, settings, metadata_directory)

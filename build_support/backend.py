"""setuptools, with editable installs that keep ``twisted/plugins`` discoverable,
and wheels that carry nothing a package list left out.

twistd finds plugins by scanning every ``sys.path`` entry for a
``twisted/plugins`` directory.  setuptools' default editable install hides a
flat project behind an import hook, so the project root never reaches
``sys.path`` and ``twistd`` cannot see the imagepipe plugin.  The ``compat``
editable mode puts the root on ``sys.path`` with a ``.pth`` file; this
backend makes it the default, so a plain ``pip install -e .`` works.

setuptools builds a wheel from what it copies into ``build/lib`` and never
empties that directory, so a module removed or renamed since an earlier
build would ship again; each wheel starts from an empty ``build/``.
"""

import shutil

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 - re-export the PEP 517 hooks


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 517 hook: a wheel built from an empty ``build/`` directory."""
    shutil.rmtree("build", ignore_errors=True)
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660 hook: an editable wheel in setuptools' ``compat`` mode."""
    settings = dict(config_settings or {})
    settings.setdefault("editable_mode", "compat")
    return _setuptools.build_editable(wheel_directory, settings, metadata_directory)

"""Packaging for imagepipe: the metadata is in ``pyproject.toml``.

Only the package list lives here, because it is computed: every directory
under ``imagepipe/`` is found automatically (data directories such as
``imaging/policy`` too, so their files can be listed as package data), and
the twistd plugin ships in the ``twisted.plugins`` namespace, which must not
get an ``__init__.py`` of its own and is named explicitly.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["imagepipe", "imagepipe.*"],
                                     exclude=["*.__pycache__"]) + ["twisted.plugins"],
    zip_safe=False,
)

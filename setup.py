"""Packaging for imagepipe.

The twistd plugin ships in the ``twisted.plugins`` namespace, which must not
get an ``__init__.py`` of its own; it is listed as a plain package here.
"""

from setuptools import setup

setup(
    name="imagepipe",
    version="2.0.0",
    description="XML-RPC image store that resizes with ImageMagick (or Pillow) and "
                "replicates over ZeroMQ",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=["imagepipe", "imagepipe.imaging", "imagepipe.replication", "imagepipe.web",
              "twisted.plugins"],
    package_data={"imagepipe.imaging": ["magick/policy.xml"]},
    install_requires=[
        "Twisted[tls]>=23.10",  # tls: https origins
        "txZMQ>=1.0",
        "pyzmq>=25",
        "configobj>=5.0.8",
        "Unidecode>=1.3",
        "Wand>=0.6.11",
        "defusedxml>=0.7",
        "Pillow>=10",
    ],
    extras_require={
        "test": ["pytest>=7", "psutil>=5.9", "numpy>=1.24"],
    },
    entry_points={"console_scripts": ["imagepipe = imagepipe.cli:main"]},
    zip_safe=False,
)

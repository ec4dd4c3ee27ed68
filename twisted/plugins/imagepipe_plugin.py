"""twistd plugin: ``twistd -n imagepipe -c imagepipe.ini``.

Kept to one lazy declaration so that ``twistd --help`` never imports
ImageMagick, ZeroMQ or the rest of imagepipe.
"""

from twisted.application.service import ServiceMaker

imagepipe = ServiceMaker(
    "imagepipe",
    "imagepipe.tap",
    "XML-RPC image store with ImageMagick resizing and ZeroMQ replication",
    "imagepipe",
)

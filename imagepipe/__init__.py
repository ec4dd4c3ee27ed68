"""imagepipe: an XML-RPC image store that makes size variants with ImageMagick."""

__version__ = "2.0.0"

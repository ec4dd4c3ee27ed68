"""What an imaging backend offers, as ``zope.interface`` interfaces.

``ITransformer`` is what the on-the-fly renderer and ``/health`` use: the
Wand and Pillow engines provide it, and so does ``ProcessEngine``, which
makes the same transforms in render processes.  ``IEngine`` adds what the
store uses: reading a header, and rendering a call's stored variants.
Every method is synchronous and runs in a worker thread (or a child).
"""

from zope.interface import Attribute, Interface


class ITransformer(Interface):
    """Makes on-the-fly transforms of source bytes."""

    name = Attribute("The engine's name, one of imagepipe.imaging.engines.NAMES.")
    formats = Attribute("The formats it writes: a set of names such as 'jpg', 'webp'.")
    limits = Attribute("The ImageLimits in force (a reload replaces them).")

    def transform(data, transform, defaults, accept=()):
        """The ``Rendered`` picture ``transform`` (a ``Transform``) makes of ``data``.

        ``defaults`` (``EncodeOptions``) fill what the transform leaves
        unset; ``accept`` names the formats ``format:auto`` may pick.
        Raises ``ClientError`` for a source it cannot read and ``TooLarge``
        past a limit.
        """

    def transform_source(tree, path, transform, defaults, accept=()):
        """``transform`` of the file at ``path`` of ``tree``: (Rendered, version, mtime).

        Raises ``SourceMissing`` when there is no such file, and what
        ``transform`` raises.
        """


class IEngine(ITransformer):
    """An engine in this process: also what the store and ``image_info`` need."""

    def inspect(data):
        """The ``SourceInfo`` of ``data`` from its header, once every check before
        decoding has passed; ``ClientError`` or ``TooLarge`` otherwise."""

    def render(data, variants, options):
        """The encoded bytes of each ``VariantSpec`` of ``data``, in order."""

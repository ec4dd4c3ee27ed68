"""The imaging engines by name: the one place that knows which exist.

``[images] engine`` takes one of ``NAMES``; the node and each render
process build theirs with ``make``.  Importing this module imports no
engine: each is imported when made (Wand only after ``magick.start``).
"""

NAMES = ("wand", "pillow")


def make(name, limits, status):
    """The engine ``name`` with ``limits`` (an ``ImageLimits``).

    ``status`` is what ``magick.start`` found (the Wand engine writes its
    formats); call ``magick.start`` first.
    """
    if name == "pillow":
        from imagepipe.imaging.pillow_engine import PillowEngine, available_formats

        return PillowEngine(limits, available_formats())
    if name == "wand":
        from imagepipe.imaging.wand_engine import WandEngine

        return WandEngine(limits, status.formats)
    raise ValueError(f"engine: expected one of {', '.join(NAMES)}, got {name!r}")

"""ImageMagick behind imagepipe's policy, started once per test process."""

_MAGICK = []  # the MagickStatus, once ImageMagick has been started in this process


def magick_status():
    """Start ImageMagick behind imagepipe's policy, once per test session."""
    if not _MAGICK:
        from imagepipe.config import MagickSettings
        from imagepipe.imaging import magick

        _MAGICK.append(magick.start(MagickSettings(convert="", thread_limit=1, time_limit=60,
                                                   limits=(), environment=())))
    return _MAGICK[0]

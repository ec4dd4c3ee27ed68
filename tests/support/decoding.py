"""Reading what the server made: Pillow, the independent decoder, never imagepipe's own code."""

import io

from PIL import Image


def durations(image):
    """Every frame's duration (read once the frame is loaded)."""
    found = []
    for index in range(image.n_frames):
        image.seek(index)
        image.load()
        found.append(image.info["duration"])
    return found


def opened(data):
    """Decode bytes with Pillow (the independent decoder)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image

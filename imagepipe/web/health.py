"""``GET /health``: render a built-in picture through every mode and check the sizes.

With render processes, the checks run in them: the health of the node is
the health of what renders its requests.

Answers 200 with the checks as JSON when every output has the size it
should, else 503 naming what failed; a load balancer takes the node out of
rotation on anything but 200.  The render runs in the worker pool like any
request, so a node whose queue is full also answers 503.
"""

import io
import json

from PIL import Image
from twisted.logger import Logger
from twisted.web import resource, server

from imagepipe.errors import Busy
from imagepipe.imaging import EncodeOptions
from imagepipe.imaging.formats import by_name
from imagepipe.imaging.transform import Transform
from imagepipe.web.statuses import failed

# (name, transform, expected width and height) for a 64x48 source.
CHECKS = (
    ("fit", Transform(width=32, height=32, format="jpg"), (32, 24)),
    ("fill", Transform(width=20, height=20, mode="fill", gravity="east", format="png"), (20, 20)),
    ("pad", Transform(width=40, height=40, mode="pad", background="white", format="jpg"),
     (40, 40)),
    ("cover", Transform(width=20, height=20, mode="cover", format="jpg"), (27, 20)),
    ("force", Transform(width=30, height=10, mode="force", format="webp"), (30, 10)),
    ("crop+rotate", Transform(width=10, crop=(0, 0, 0.5, 0.5), rotate=90, enlarge=True,
                              format="jpg"), (10, 13)),
    ("trim", Transform(trim=True, format="png"), (56, 40)),
    ("steps", Transform(width=32, format="png", then=(Transform(rotate=90),
                                                       Transform(width=12, height=12,
                                                                 mode="fill", shrink=False))),
     (12, 12)),
)


def sample():
    """A 64x48 PNG: four coloured quadrants inside a 4 px white border."""
    image = Image.new("RGB", (64, 48), (255, 255, 255))
    for (left, top), colour in (((4, 4), (200, 30, 30)), ((32, 4), (30, 160, 40)),
                                ((4, 24), (30, 60, 200)), ((32, 24), (230, 200, 40))):
        image.paste(colour, (left, top, left + 28, top + 20))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def run_checks(engine, data, render=None):
    """Each check as a dict; ``ok`` False when the output size or format is wrong.

    ``render(data, transform, defaults)`` renders (default: ``engine.transform``,
    which a ``ProcessEngine`` makes in the render processes).
    """
    render = render or engine.transform
    results = []
    for name, transform, expected in CHECKS:
        fmt = by_name(transform.format) if transform.format in engine.formats else None
        if fmt is None:
            continue  # a format this engine does not write (reported at start-up)
        try:
            rendered = render(data, transform, EncodeOptions(quality=80))
            with Image.open(io.BytesIO(rendered.data)) as image:
                got = image.size
            ok = got == expected and rendered.format == fmt
            results.append({"mode": name, "expected": list(expected), "got": list(got),
                            "ok": ok})
        except Exception as error:  # noqa: BLE001 - a failing check is the answer
            results.append({"mode": name, "expected": list(expected), "error": str(error),
                            "ok": False})
    return results


class Health(resource.Resource):
    """The ``/health`` resource."""

    isLeaf = True
    log = Logger()

    def __init__(self, engine, workers):
        super().__init__()
        self.engine = engine  # the renderer's: an Engine, or a ProcessEngine (the children)
        self.workers = workers
        self.data = sample()

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        try:
            d = self.workers.renders.submit(run_checks, self.engine, self.data)
        except Busy as error:  # the render queue is full, or the node is shutting down
            request.setResponseCode(503)
            return json.dumps({"ok": False, "error": str(error)}).encode()
        d.addCallback(self._answer, request)
        d.addErrback(lambda failure: failed(request, failure.value, self.log, failure,
                                            self.workers.closing))
        return server.NOT_DONE_YET

    def _answer(self, results, request):
        ok = bool(results) and all(item["ok"] for item in results)
        if not ok:
            request.setResponseCode(503)
        request.write(json.dumps({"ok": ok, "engine": self.engine.name,
                                  "checks": results}).encode())
        request.finish()

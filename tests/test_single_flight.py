"""The renderer's bookkeeping on the reactor, with lanes the test fires by hand:
identical requests in flight share one render, and one client's renders are bounded."""

import pytest
from twisted.internet import defer

from imagepipe.config import HttpSettings
from imagepipe.errors import Busy, OperationFailed
from imagepipe.imaging.transform import Transform
from imagepipe.web.dialects import Request
from imagepipe.web.render import Renderer


class Lane:
    """Keeps each submitted job's Deferred for the test to fire."""

    def __init__(self):
        self.jobs = []

    def submit(self, function, *args, client=None):
        d = defer.Deferred()
        self.jobs.append((d, args, client))
        return d

    def admit(self, waiting=0):
        pass


class Workers:
    closing = False

    def __init__(self):
        self.renders = Lane()


class BlockingSource:
    blocking = True
    versions_known = True


def renderer(max_client_renders=2):
    settings = HttpSettings(cache_path="", cache_max_bytes=0, max_age=60, accel_redirect="",
                            quality=80, auto_avif=False, sign_keys="", mounts=(), origins=None,
                            max_client_renders=max_client_renders)
    return Renderer(None, Workers(), None, {"tree": BlockingSource()}, settings)


def ask(render, width, client="192.0.2.1"):
    outcome = []
    d = render.answer("tree", Request("a.jpg", Transform(width=width)), None, (), "", client)
    d.addBoth(outcome.append)
    return outcome


def test_identical_requests_in_flight_share_one_render():
    render = renderer()
    first, second = ask(render, 100), ask(render, 100, client="192.0.2.2")
    assert len(render.workers.renders.jobs) == 1 and render.counts["shared"] == 1
    render.workers.renders.jobs[0][0].callback("the picture")
    assert first == second == ["the picture"]
    ask(render, 100)
    assert len(render.workers.renders.jobs) == 2  # landed: the next one renders again


def test_a_failed_render_fails_every_request_sharing_it():
    render = renderer()
    first, second = ask(render, 100), ask(render, 100)
    render.workers.renders.jobs[0][0].errback(OperationFailed("disk"))
    assert [type(o.value) for o in first + second] == [OperationFailed, OperationFailed]


def test_one_client_holds_at_most_max_client_renders():
    render = renderer(max_client_renders=2)
    ask(render, 100), ask(render, 200)
    refused = ask(render, 300)
    assert isinstance(refused[0].value, Busy) and "max_client_renders (2)" in str(
        refused[0].value)
    assert len(render.workers.renders.jobs) == 2
    other = ask(render, 300, client="192.0.2.9")  # another client is not held back
    assert other == [] and len(render.workers.renders.jobs) == 3
    render.workers.renders.jobs[0][0].callback("done")
    ask(render, 400)  # one landed: room again
    assert len(render.workers.renders.jobs) == 4
    assert render.by_client["192.0.2.1"] == 2


def test_joining_a_render_in_flight_does_not_count_against_the_client():
    render = renderer(max_client_renders=1)
    ask(render, 100, client="192.0.2.2")
    joined = ask(render, 100)  # the same picture: shared, not a render of its own
    assert joined == [] and "192.0.2.1" not in render.by_client


@pytest.mark.parametrize("outcome", ["callback", "errback"])
def test_a_landed_render_releases_its_client(outcome):
    render = renderer()
    ask(render, 100)
    d = render.workers.renders.jobs[0][0]
    getattr(d, outcome)("done" if outcome == "callback" else OperationFailed("x"))
    assert not render.by_client and not render._flights


def test_a_head_and_a_get_sharing_a_flight_both_get_the_picture(tmp_path):
    from imagepipe.tree import Tree
    from imagepipe.web.cache import ResultCache
    from imagepipe.web.render import cache_key
    from imagepipe.web.sources import StoredSource as Source

    (tmp_path / "a.jpg").write_bytes(b"source bytes")
    render = renderer()
    render.cache = ResultCache(str(tmp_path / "cache"), 1 << 20, "test")
    render.sources = {"tree": Source(Tree(str(tmp_path), 0o022))}
    render.workers.lookups = Lane()  # lookups fired by hand, like the renders
    request = Request("a.jpg", Transform(width=100))
    outcomes = {}
    for method, body in (("HEAD", False), ("GET", True)):
        d = render.answer("tree", request, "r/w:100/a.jpg", (), "", None, body)
        d.addBoth(lambda result, method=method: outcomes.setdefault(method, result))
    for d, _, _ in render.workers.lookups.jobs:
        d.callback(None)  # both missed: the HEAD renders, the GET joins its flight
    assert len(render.workers.renders.jobs) == 1
    # Meanwhile another render of the same picture was stored; the job finds it.
    key = cache_key("tree", request)
    version = render.sources["tree"].version("a.jpg")
    render.cache.store("r/w:100/a.jpg", key, "a.jpg", version, b"the picture", "jpg")
    job, args, _ = render.workers.renders.jobs[0]
    job.callback(render._job(*args))
    assert outcomes["HEAD"].data == outcomes["GET"].data == b"the picture"
    assert render.counts["cache_hits"] == 1 and render.counts["renders"] == 0

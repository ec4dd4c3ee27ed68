"""The URL builder's pure part: the native URL for the page's options, and each dialect's
equivalent only when it parses back to the same transform."""

from types import SimpleNamespace

import pytest

from imagepipe.config import MountSettings
from imagepipe.web import dialects
from imagepipe.web.operator import OperatorApi
from imagepipe.web.signing import Signer

SETTINGS = {"native": "NativeSettings", "openross": "OpenRossSettings",
            "dirpy": "DirpySettings"}


def api(scheme="none", signer=None):
    mounts = []
    for name, settings in SETTINGS.items():
        module = dialects.named(name)
        prefix = "/r/" if name == "native" else f"/{name}/"
        mounts.append((MountSettings(name, prefix, "tree", getattr(module, settings)()), module))
    rpc = SimpleNamespace(authenticator=SimpleNamespace(scheme=scheme))
    return OperatorApi(rpc, None, None, mounts, signer)


@pytest.mark.parametrize("options, expected", [
    ({"w": "300", "h": "200", "mode": "fit", "enlarge": "1", "format": "jpg", "quality": "90"},
     {"native": "/r/w:300/h:200/m:fit/f:jpg/q:90/e:1/-/a/cat.jpg",
      "openross": "/openross/300/200/resize/a/cat.jpg",
      "dirpy": "/dirpy/a/cat.jpg?resize=300x200&save=fmt%3Ajpg%2Cqual%3A90"}),
    ({"w": "300", "h": "200", "mode": "fit", "enlarge": "1"},
     {"native": "/r/w:300/h:200/m:fit/e:1/-/a/cat.jpg",
      "dirpy": "/dirpy/a/cat.jpg?resize=300x200"}),
    ({"w": "300", "h": "200", "mode": "fill"},  # neither says fill without enlarging
     {"native": "/r/w:300/h:200/m:fill/-/a/cat.jpg"}),
])
def test_equivalents_are_offered_only_when_they_mean_the_same(options, expected):
    assert api().urls(dict(options, path="a/cat.jpg")) == {"urls": expected}


def test_a_bad_option_is_named_and_nothing_is_offered():
    assert "width" in api().urls({"path": "a/cat.jpg", "w": "0"})["error"]


def test_urls_are_signed_only_for_a_caller_the_write_api_authenticated():
    signer = Signer([b"k" * 16])
    open_node = api("none", signer).urls({"path": "a/cat.jpg", "w": "50"})
    assert open_node["urls"]["native"] == "/r/w:50/-/a/cat.jpg"
    guarded = api("basic", signer).urls({"path": "a/cat.jpg", "w": "50"})["urls"]["native"]
    signature, _, rest = guarded[len("/r/"):].partition("/")
    assert rest == "w:50/-/a/cat.jpg" and len(signature) == 43

"""The ImageMagick security policy check: refused, absent, or fatal.

A coder the policy refuses and a coder this ImageMagick does not have are
both safe; a coder that reaches its decoder stops the node from starting.
"""

import os
import re
import subprocess
import sys

import pytest

from support.magick import magick_status
from support.samples import picture
from support.server import ROOT
from imagepipe.errors import ConfigError
from imagepipe.imaging import magick
from imagepipe.imaging.magick import ABSENT, REFUSED, judge_policy

PROBED = [coder for coder, _ in magick._POLICY_PROBES]


def test_coders_the_policy_refuses_are_safe():
    report = judge_policy({"MVG": REFUSED, "MSL": REFUSED})
    assert report.refused == ("MVG", "MSL") and report.absent == ()


def test_coders_this_imagemagick_lacks_are_safe_and_reported_apart():
    report = judge_policy({"MVG": REFUSED, "SVG": ABSENT, "PDF": REFUSED})
    assert report.refused == ("MVG", "PDF") and report.absent == ("SVG",)


def test_a_coder_that_decodes_is_fatal_and_named():
    with pytest.raises(ConfigError, match="the SVG probe was decoded"):
        judge_policy({"MVG": REFUSED, "SVG": "was decoded"})


def test_a_coder_that_runs_and_fails_is_fatal_too():
    outcome = "reached the coder, which failed with CorruptImageError"
    with pytest.raises(ConfigError, match="the PS probe reached the coder"):
        judge_policy({"MVG": REFUSED, "PS": outcome})


def test_the_sentinel_not_refused_means_the_policy_was_not_loaded():
    # Debian's own policy refuses PDF: only MVG shows that imagepipe's file is in force.
    with pytest.raises(ConfigError, match="the MVG probe was not refused"):
        judge_policy({"MVG": ABSENT, "PDF": REFUSED})


def test_probing_stops_at_the_first_coder_that_runs(monkeypatch):
    asked = []

    def probe(coder, payload):
        asked.append(coder)
        return "was decoded" if coder == "MSL" else REFUSED

    monkeypatch.setattr(magick, "probe", probe)
    with pytest.raises(ConfigError, match="the MSL probe was decoded"):
        magick.prove_policy()
    assert asked == PROBED[:PROBED.index("MSL") + 1]


def test_a_real_refusal_a_real_absence_and_a_real_decode():
    magick_status()  # the policy is loaded before Wand is imported
    assert magick.probe("MVG", dict(magick._POLICY_PROBES)["MVG"]) == REFUSED
    assert magick.probe("NOSUCHCODER", b"x") == ABSENT
    assert magick.probe("PNG", picture(4, 4, fmt="PNG")) == "was decoded"


def test_every_probed_coder_is_refused_or_absent_here():
    status = magick_status()
    assert sorted(status.refused + status.absent) == sorted(PROBED)
    assert "MVG" in status.refused


def test_wand_loaded_without_the_policy_refuses_to_start():
    # Wand imported first: ImageMagick never reads imagepipe's policy.xml.
    script = ("import wand.image\n"
              "from imagepipe.imaging import magick\n"
              "magick.prove_policy()\n")
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("MAGICK_")}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert re.search(r"ConfigError: ImageMagick security policy is not in force: .*the MVG "
                     r"probe was decoded", done.stderr)


def test_the_start_up_log_names_refused_and_absent_coders(server):
    line = next(line for line in server.log().splitlines() if "policy in force" in line)
    refused, _, absent = line.partition("refuses ")[2].partition("; not in this ImageMagick: ")
    named = refused.split(", ") + ([] if absent.strip() == "none" else absent.split(", "))
    assert "MVG" in refused.split(", ")
    assert sorted(name.strip() for name in named) == sorted(PROBED)

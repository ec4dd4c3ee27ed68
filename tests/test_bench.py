"""Every benchmark script starts: its imports (bench/common.py takes helpers from
tests/support) resolve as they do when it is run as ``python bench/<name>.py``."""

import subprocess
import sys

import pytest

from support.server import ROOT

SCRIPTS = sorted(path.name for path in (ROOT / "bench").glob("*.py")
                 if path.name not in ("common.py", "corpus.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_starts_and_describes_its_options(script):
    done = subprocess.run([sys.executable, f"bench/{script}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout

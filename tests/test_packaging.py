"""The built wheel is a complete product: installed alone, it serves.

The wheel is built from a copy of the source tree (so no stale ``build/``
directory can add what the package list forgets) and installed into a
virtual environment of its own, its dependencies from the package index.
The node then runs from a working directory outside the source tree, where
no checkout can stand in for a missing module or data file.
"""

import http.client
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support.decoding import opened
from support.samples import picture
from support.server import ROOT, Server, b64

pytestmark = pytest.mark.slow

IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                 "*.pyc", "dropin.cache", "var", ".pytest_cache", ".cache",
                                 "imagepipe.ini")

WANELO = "shop/abc/def/012/3456789abcdef0123456789"
EVERY_DIALECT = {
    "native": {},
    "openross": {"enabled": "true"},
    "wanelo": {"enabled": "true"},
    "phizer": {"enabled": "true", "source": "tree", "sizes": {"thumb": "60x60 square"}},
    "dirpy": {"enabled": "true"},
}


def run(*command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}:\n{done.stdout}{done.stderr}"
    return done.stdout


def source_files(under):
    """Every file of the source tree below ``under``, relative to the tree's root."""
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / under).rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts
                  and path.name != "dropin.cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment holding only the wheel built from this tree (and its deps).

    The copy keeps a stale ``build/`` of an earlier wheel, as a checkout has:
    the build must not ship what it holds.
    """
    base = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, base / "source", ignore=IGNORED)
    stale = base / "source" / "build" / "lib" / "imagepipe"
    stale.mkdir(parents=True)
    (stale / "removed_long_ago.py").write_text("raise ImportError('stale')\n")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", base / "dist",
        base / "source")
    (wheel,) = (base / "dist").glob("imagepipe-*.whl")
    run(sys.executable, "-m", "venv", base / "venv")
    run(base / "venv" / "bin" / "pip", "install", "-q", wheel)
    purelib = run(base / "venv" / "bin" / "python", "-c",
                  "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    return base / "venv", Path(purelib), wheel


def test_the_wheel_holds_the_tree_exactly(installed):
    _, site, wheel = installed
    shipped = zipfile.ZipFile(wheel).namelist()
    assert sorted(name for name in shipped if ".dist-info/" not in name) == sorted(
        source_files("imagepipe") + source_files("twisted"))
    missing = [name for name in source_files("imagepipe") + source_files("twisted")
               if not (site / name).is_file()]
    assert missing == []
    # Twisted's own package files are never overwritten by the plugin's namespace.
    assert "twisted/__init__.py" not in shipped and "twisted/plugins/__init__.py" not in shipped
    assert not [pth for pth in site.glob("*.pth") if str(ROOT) in pth.read_text()]


def test_the_installed_package_imports_from_the_environment_not_the_checkout(installed, tmp_path):
    venv, site, _ = installed
    where = run(venv / "bin" / "python", "-c", "import imagepipe, pkgutil, importlib\n"
                "for m in pkgutil.walk_packages(imagepipe.__path__, 'imagepipe.'):\n"
                "    importlib.import_module(m.name)\n"
                "print(imagepipe.__file__, imagepipe.__version__)", cwd=tmp_path)
    path, version = where.split()
    assert Path(path).is_relative_to(site)
    assert version == run(sys.executable, "-c", "import imagepipe; print(imagepipe.__version__)",
                          cwd=ROOT).strip()


def test_the_console_script_runs(installed, tmp_path):
    venv, _, _ = installed
    out = run(venv / "bin" / "imagepipe", "keygen", tmp_path / "keys", "node", cwd=tmp_path)
    assert "public key:" in out and (tmp_path / "keys" / "node.key_secret").exists()


def test_twistd_from_the_wheel_stores_and_serves_every_dialect(installed, tmp_path):
    venv, _, _ = installed
    node = Server(tmp_path / "run", twistd=str(venv / "bin" / "twistd"))
    node.sections["http"] = EVERY_DIALECT
    (node.root / "photos").mkdir()
    (node.root / WANELO).mkdir(parents=True)
    (node.root / WANELO / "original").write_bytes(picture(300, 150))
    node.start()
    try:
        assert node.proxy().store_image(b64(picture(400, 200)), "photos/wide.jpg", "",
                                        [200, 200]) == "OK"
        assert opened((node.root / "photos" / "wide.jpg").read_bytes()).size == (200, 100)
        for path, size in [("/r/w:100/photos/wide.jpg", (100, 50)),
                           ("/openross/80/60/resizecomp/photos/wide.jpg", (80, 60)),
                           (f"/wanelo/{WANELO}/w100-q60.jpg", (100, 50)),
                           ("/phizer/thumb/photos/wide.jpg", (60, 60)),
                           ("/dirpy/photos/wide.jpg?resize=50x50,fill&crop=50x50", (50, 50))]:
            connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert response.status == 200, (path, body)
            assert opened(body).size == size, path
    finally:
        node.stop()

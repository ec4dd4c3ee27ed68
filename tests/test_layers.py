"""Each layer knows only the layers below it: the imaging layer and a render process
run without Twisted, and the engines come from one registry."""

import pickle
import subprocess
import sys

import pytest

from support.samples import picture
from support.server import ROOT, render_config
from imagepipe import config as configuration
from imagepipe.imaging import engines


def run(script, *args):
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_imaging_layer_imports_no_twisted():
    imported = run(
        "import importlib, pkgutil, sys\n"
        "import imagepipe.imaging as imaging\n"
        "for module in pkgutil.walk_packages(imaging.__path__, 'imagepipe.imaging.'):\n"
        "    importlib.import_module(module.name)\n"
        "import imagepipe.tree, imagepipe.config, imagepipe.paths\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))")
    assert imported == "[]"


def test_a_render_process_renders_without_twisted(tmp_path):
    from imagepipe.tap import child_settings  # the node's side: Twisted is fine here

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(picture(80, 60))
    ini = tmp_path / "imagepipe.ini"
    ini.write_text(render_config({"images": {"path": str(tmp_path / "images")}}))
    settings = child_settings(configuration.load(str(ini)))
    (tmp_path / "settings.pickle").write_bytes(pickle.dumps(settings))
    answer = run(
        "import pickle, sys\n"
        "from imagepipe.imaging import EncodeOptions\n"
        "from imagepipe.imaging.processes import _Worker\n"
        "from imagepipe.imaging.transform import Transform\n"
        "settings = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "worker = _Worker(settings)\n"
        "reply = worker.run('transform_path', settings['limits'], None,\n"
        "                   ('a.jpg', Transform(width=40), EncodeOptions(), ()))\n"
        "print(len(reply) > 100, sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))",
        str(tmp_path / "settings.pickle"))
    assert answer == "True []"


def test_the_config_offers_the_registered_engines():
    spec = next(s for s in configuration.declared() if (s.section, s.key) == ("images", "engine"))
    assert spec.check == "option(" + ", ".join(repr(name) for name in engines.NAMES) + ")"


def test_an_unknown_engine_is_refused_by_name():
    with pytest.raises(ValueError, match="expected one of wand, pillow, got 'vips'"):
        engines.make("vips", None, None)


def test_the_design_s_module_map_names_every_module_and_only_modules_that_exist():
    import re
    from pathlib import Path

    design = (Path(ROOT) / "docs" / "design.md").read_text()
    rows = re.findall(r"^\| `((?:imagepipe|twisted)/[\w/]+(?:\.py|/))` \|", design, re.M)
    folders = [row for row in rows if row.endswith("/")]  # a row for a folder of small modules
    named = {row for row in rows if row.endswith(".py")}
    modules = {str(path.relative_to(ROOT)) for top in ("imagepipe", "twisted")
               for path in Path(ROOT, top).rglob("*.py")
               if path.name not in ("__init__.py", "__main__.py") or path.parent.name == "imaging"}
    unnamed = [module for module in modules - named
               if not any(module.startswith(folder) for folder in folders)]
    assert sorted(unnamed) == [] and sorted(named - modules) == []
    assert all(Path(ROOT, folder).is_dir() for folder in folders)


def test_a_dialect_declaring_its_settings_loads_no_config_machinery():
    imported = run(
        "import sys\n"
        "import imagepipe.web.dialects.native, imagepipe.web.dialects.dirpy\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('configobj', 'validate')\n"
        "             or m.startswith('imagepipe.config')))")
    assert imported == "[]"

"""Loading the config: the original keys, the .dist file, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from support.server import ROOT, TWISTD
from imagepipe import config
from imagepipe.errors import ConfigError

ORIGINAL = """\
[network]
# The network interface and port to listen on for XML-RPC calls
interface = 0.0.0.0
port = 8085

[replication]
# Where should other instances connect to replicate data from this one
publish = tcp://0.0.0.0:8086
# publish = ipc:///tmp/imagepipe.sock

# Where should this instance connect to replicate data from another one
# subscribe = tcp://127.0.0.1:9086

[images]
# The root path for stored images
path = {root}

# Umask applied on the created images and intermediate directories
umask = 18 #0022

# Number of threads performing image manipulations (convert instances)
io_threads = 1

[imagemagick]
convert = /usr/bin/convert
# See http://www.imagemagick.org/script/resources.php#environment
[[env]]
MAGICK_THREAD_LIMIT = 1
MAGICK_TIME_LIMIT = 60
"""


def write(tmp_path, text):
    path = tmp_path / "imagepipe.ini"
    path.write_text(text)
    return str(path)


def test_the_original_config_file_loads(tmp_path):
    loaded = config.load(write(tmp_path, ORIGINAL.format(root=tmp_path)))
    assert loaded.network.interface == "0.0.0.0" and loaded.network.port == 8085
    assert loaded.replication.publish == ("tcp://0.0.0.0:8086",)
    assert loaded.images.umask == 0o022 and loaded.images.io_threads == 1
    assert loaded.imagemagick.convert == "/usr/bin/convert"
    assert loaded.imagemagick.thread_limit == 1 and loaded.imagemagick.time_limit == 60


@pytest.mark.parametrize("text,mask", [("18", 0o022), ("0022", 0o022), ("0o027", 0o027),
                                       ("0", 0), ("63", 0o077)])
def test_umask_reads_decimal_and_leading_zero_octal(tmp_path, text, mask):
    loaded = config.load(write(tmp_path, f"[images]\npath = {tmp_path}\numask = {text}\n"))
    assert loaded.images.umask == mask


def test_defaults_listen_on_loopback_only(tmp_path):
    loaded = config.load(write(tmp_path, f"[images]\npath = {tmp_path}\n"))
    assert loaded.network.interface == "127.0.0.1"
    assert loaded.images.max_pending == 4 * loaded.images.io_threads


def test_relative_image_path_is_taken_from_the_config_directory(tmp_path):
    (tmp_path / "pics").mkdir()
    loaded = config.load(write(tmp_path, "[images]\npath = pics\n"))
    assert loaded.images.path == str((tmp_path / "pics").resolve())


def test_magick_limits_with_units_become_wand_limits(tmp_path):
    loaded = config.load(write(tmp_path, f"[images]\npath = {tmp_path}\n[imagemagick]\n"
                                         f"[[env]]\nMAGICK_MEMORY_LIMIT = 128MiB\n"
                                         f"MAGICK_WIDTH_LIMIT = 8KP\nMAGICK_TMPDIR = /tmp\n"))
    limits = dict(loaded.imagemagick.limits)
    assert limits["memory"] == 128 * 1024 * 1024 and limits["width"] == 8000
    assert dict(loaded.imagemagick.environment) == {"MAGICK_TMPDIR": "/tmp"}


@pytest.mark.parametrize("text,fragment", [
    ("[images]\npath = {root}\numask = abc\n", "[images] umask = 'abc': expected an octal"),
    ("[images]\npath = {root}\n[network]\nport = 99999\n",
     "[network] port = '99999': expected a whole number from 0 to 65535"),
    ("[network]\nport = 1\n", "[images] path is missing"),
    ("[images]\npath = {root}/nope\n", "[images] path = '{root}/nope': expected an existing"),
    ("[images]\npath = {root}\nmax_pixels = lots\n", "[images] max_pixels = 'lots'"),
    ("[images]\npath = {root}\nio_thread = 2\n", "[images] io_thread: unknown setting"),
    ("[images]\npath = {root}\n[network]\nauth = basic\n", "[network] auth_file = ''"),
    ("[images]\npath = {root}\n[network]\nauth = basic\nauth_file = {root}/users\n",
     "[network] auth_file = '{root}/users': expected 'user:password' lines"),
    ("[images]\npath = {root}\n[network]\nauth = token\nauth_file = {root}/empty\n",
     "[network] auth_file = '{root}/empty': no credentials"),
    ("[images]\npath = {root}\n[imagemagick]\n[[env]]\nFOO = 1\n",
     "[imagemagick/env] FOO: unknown setting"),
])
def test_errors_name_file_section_key_value_and_expectation(tmp_path, text, fragment):
    (tmp_path / "users").write_text("no colon here\n")
    (tmp_path / "empty").write_text("# nothing\n\n")
    filename = write(tmp_path, text.format(root=tmp_path))
    with pytest.raises(ConfigError) as error:
        config.load(filename)
    message = str(error.value)
    assert message.startswith(filename + ": ")
    assert fragment.format(root=tmp_path) in message
    assert "\n" not in message


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(str(tmp_path / "absent.ini"))


def test_dist_file_is_generated_from_the_declarations():
    assert (ROOT / "imagepipe.ini.dist").read_text() == config.dist_text()


def test_every_declared_key_appears_in_the_dist_file():
    text = (ROOT / "imagepipe.ini.dist").read_text()
    for setting in config.declared():
        assert f"{setting.key} = " in text, setting.key


def test_dist_file_loads_once_its_path_exists(tmp_path):
    (tmp_path / "var" / "images").mkdir(parents=True)
    target = tmp_path / "imagepipe.ini"
    target.write_text((ROOT / "imagepipe.ini.dist").read_text())
    assert config.load(str(target)).network.port == 8085


def test_twistd_refuses_a_bad_config_as_a_usage_error_naming_the_key(tmp_path):
    filename = write(tmp_path, f"[images]\npath = {tmp_path}\numask = 0999\n")
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "imagepipe", "-c", filename],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    # twistd's way with a usage error: the command's usage, then one line naming it.
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert any(line.strip().startswith("-c, --config=") for line in lines)
    assert lines[-1].endswith(f" -n: {filename}: [images] umask = '0999': expected an octal "
                              f"umask with a leading 0 (0022) or a decimal one (18)")
    assert "Traceback" not in result.stdout + result.stderr


def test_plugin_module_imports_nothing_heavy():
    code = ("import sys, twisted.plugins.imagepipe_plugin as p; "
            "heavy = [m for m in ('wand', 'zmq', 'imagepipe.tap', 'imagepipe') if m in sys.modules];"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(ROOT), check=True).stdout.strip()
    assert out == "[]"


def test_twistd_lists_the_plugin():
    out = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "imagepipe" in out

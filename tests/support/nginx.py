"""nginx in front of imagepipe, laid out as the tests and the benchmarks run it.

The shipped site file (``examples/nginx/imagepipe.conf``) is used as it is,
its placeholders filled, inside a main config that keeps every nginx path
(pid, logs, temp dirs) in one directory.  Standard library only:
``bench/common.py`` imports it too.
"""

import re
import subprocess
from pathlib import Path

SITE = Path(__file__).resolve().parents[2] / "examples" / "nginx" / "imagepipe.conf"

MAIN = """\
{user}worker_processes {workers};
pid {base}/nginx.pid;
error_log {base}/error.log {log_level};
events {{ worker_connections {connections}; }}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    include {site};
}}
"""


def site_config(port, upstream_port, images, cache):
    """The shipped site file: listening on ``port``, in front of imagepipe on ``upstream_port``.

    ``images`` and ``cache`` are imagepipe's image root and result cache.
    ValueError when the file lacks a placeholder, or has one not filled here.
    """
    site = SITE.read_text()
    for token, value in (("@LISTEN@", f"127.0.0.1:{port}"), ("@ROOT@", str(images)),
                         ("@CACHE@", str(cache)),
                         ("@UPSTREAM@", f"127.0.0.1:{upstream_port}")):
        if token not in site:
            raise ValueError(f"{SITE} has no {token} placeholder")
        site = site.replace(token, value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", site)))
    if left:
        raise ValueError(f"{SITE} has placeholders not filled here: {', '.join(left)}")
    return site


def lay_out(base, site, workers=1, connections=64, log_level="info", user=None):
    """Write ``base/nginx.conf``, which includes ``site`` (text) from ``base/imagepipe.conf``.

    ``user`` is who the workers run as when nginx starts as root (nginx's
    default: nobody).
    """
    (base / "tmp").mkdir(parents=True)
    (base / "imagepipe.conf").write_text(site)
    (base / "nginx.conf").write_text(MAIN.format(
        user=f"user {user};\n" if user else "", workers=workers, base=base,
        log_level=log_level, connections=connections, site=base / "imagepipe.conf"))


def command(nginx, base):
    """The command that runs ``nginx`` in the foreground on what ``lay_out`` wrote in ``base``."""
    line = [nginx, "-p", str(base), "-c", str(base / "nginx.conf"), "-g", "daemon off;"]
    if version(nginx) >= (1, 19, 5):
        # Keeps nginx from opening its compiled-in error log before reading the config.
        line[1:1] = ["-e", str(base / "error.log")]
    return line


def version(nginx):
    """nginx's version as a tuple of ints (``nginx -v`` prints it on stderr)."""
    shown = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=True).stderr
    return tuple(int(part) for part in re.search(r"nginx/([\d.]+)", shown).group(1).split("."))

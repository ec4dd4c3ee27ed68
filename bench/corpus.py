"""The photographs the benchmarks use, fetched from Debian's wallpaper packages.

Each benchmark names its photos; ``photo(name)`` returns the path of one in
``bench/.cache/corpus/`` (ignored by git, like everything else the
benchmarks keep between runs in ``bench/.cache/``), and downloads the Debian package that
holds it with ``apt-get download`` the first time (the package lists are
refreshed once if apt does not know the package yet).  Nothing outside the
repository is read.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"  # what benchmarks keep between runs
PHOTOS_CACHE = CACHE / "corpus"

# photo -> (Debian package, path inside it, licence)
PHOTOS = {
    "Kleiber_by_Lukas_Baubkus.jpg": ("lomiri-wallpapers-20.04", "usr/share/backgrounds",
                                     "CC-BY-SA-3.0"),
    "seeding_by_Clements_Engelhardt.jpg": ("lomiri-wallpapers-16.04", "usr/share/backgrounds",
                                           "CC0-1.0"),
    "sunset_by_Aitzol_Berasategi.jpg": ("lomiri-wallpapers-16.04", "usr/share/backgrounds",
                                        "CC-BY-4.0"),
}


def photo(name):
    """The path of the photo ``name``, fetched into the cache when it is not there yet."""
    target = PHOTOS_CACHE / name
    if not target.is_file():
        package, folder, _ = PHOTOS[name]
        _fetch(package, folder)
        if not target.is_file():
            raise SystemExit(f"{package} holds no {folder}/{name}")
    return target


def _fetch(package, folder):
    """Download ``package`` and copy every photo of ``PHOTOS`` it holds into the cache."""
    print(f"fetching benchmark photos from the Debian package {package} ...", file=sys.stderr,
          flush=True)
    PHOTOS_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=PHOTOS_CACHE) as work:
        work = Path(work)
        done = _download(package, work)
        if done.returncode:  # apt may not know the package before its lists are refreshed
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            done = _download(package, work)
        debs = list(work.glob("*.deb"))
        if done.returncode or not debs:
            raise SystemExit(f"apt-get download {package} failed: {done.stderr.strip()}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "x")], check=True)
        for name, (source, _, _) in PHOTOS.items():
            found = work / "x" / folder / name
            if source == package and found.is_file():
                shutil.copyfile(found, PHOTOS_CACHE / f".{name}.part")
                (PHOTOS_CACHE / f".{name}.part").rename(PHOTOS_CACHE / name)


def _download(package, work):
    return subprocess.run(["apt-get", "download", "-q", package], cwd=work,
                          capture_output=True, text=True)

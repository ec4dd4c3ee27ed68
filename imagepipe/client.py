"""The client of imagepipe's XML-RPC API: what ``imagepipe store``, ``upload``, ``info``,
``move``, ``delete``, ``status`` and ``verify`` do, and the original client's command line
(``examples/client.py``, kept option for option).

Store one image, several sizes of it, or a whole folder; delete, move or
describe stored images::

    client.py -i photo.jpg --remote-path x/y/photo.jpg \\
        --size '' 500 500 --size _medium 250 250 --size _small 50 50 png crop
    client.py --dir ./photos --remote-path gallery --size - 800 800
    client.py -m x/y/other.jpg --remote-path x/y/photo.jpg
    client.py -d --remote-path x/y/photo.jpg
    client.py --info --remote-path x/y/photo.jpg

``--size`` takes ``SUFFIX W H [FMT] [composite|crop]``, either as separate
words or as one quoted string (``--size "_small 50 50 png crop"``); an empty
suffix is written ``""`` or ``-``.  A format or resize method given in a
``--size`` applies to that variant only; ``--format``, ``--composite`` and
``--crop`` apply to every variant that does not name its own.

Calls go to ``http://HOST:PORT/RPC2`` (imagepipe answers at ``/`` and
``/RPC2``; the example nginx config exposes ``/RPC2`` only), or to ``--url``.
Credentials: ``--user``/``--password`` (HTTP Basic) or ``--token`` (bearer);
the password and token may also come from ``IMAGEPIPE_PASSWORD`` and
``IMAGEPIPE_TOKEN`` so that they do not show in the process list.

Prints ``OK`` on success and exits 0; prints the fault or error on stderr and
exits 1 when anything failed (2 for a usage error).
"""

import argparse
import getpass
import os
import shlex
import socket
import sys
import urllib.parse
import xmlrpc.client
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(("jpg", "jpeg", "jpe", "png", "gif", "webp", "avif", "heic", "heif"))
METHODS = ("composite", "crop")


class Unreachable(Exception):
    """The server cannot be reached at all; there is no point in trying more files."""


def parse_size(words):
    """``(suffix, [w, h], format or None, method or None)`` from one ``--size`` value.

    ``words`` is the list argparse collected; a single word is split like a
    shell would, so ``--size "_small 50 50 png"`` works as well as
    ``--size _small 50 50 png``.
    """
    if len(words) == 1:
        words = shlex.split(words[0])
    if len(words) < 3:
        raise ValueError(f"--size needs SUFFIX W H [FMT] [composite|crop], got {words!r}")
    suffix, width, height, *extra = words
    suffix = "" if suffix in ("", "-", '""', "''") else suffix
    try:
        box = [int(width), int(height)]
    except ValueError:
        raise ValueError(f"--size {suffix!r}: width and height must be whole numbers, "
                         f"got {width!r} {height!r}") from None
    fmt = method = None
    for word in extra:
        if word.lower() in METHODS and method is None:
            method = word.lower()
        elif word.lower() not in METHODS and fmt is None:
            fmt = word.lower()
        else:
            raise ValueError(f"--size {suffix!r}: unexpected {word!r}")
    return suffix, box, fmt, method


def store_arguments(args):
    """The ``format, size, composite, crop`` arguments of ``store_image`` for ``args``."""
    if not args.size:
        return args.format, None, int(args.composite), int(args.crop)
    sizes, formats, composites, crops = {}, {}, {}, {}
    for words in args.size:
        suffix, box, fmt, method = parse_size(words)
        if suffix in sizes:
            raise ValueError(f"--size {suffix!r} is given twice")
        sizes[suffix] = box
        # "" means "keep the extension of the path" on the server.
        formats[suffix] = fmt or args.format or ""
        composites[suffix] = int(method == "composite" or (method is None and args.composite))
        crops[suffix] = int(method == "crop" or (method is None and args.crop))
    return formats, sizes, composites, crops


def server_url(args):
    """The endpoint URL, with Basic credentials as userinfo when ``--user`` is given."""
    url = args.url or f"http://{args.host}:{args.port}/RPC2"
    if args.user is None:
        return url
    password = args.password
    if password is None:
        password = os.environ.get("IMAGEPIPE_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {args.user}: ")
    parts = urllib.parse.urlsplit(url)
    userinfo = f"{urllib.parse.quote(args.user, safe='')}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def connect(args):
    """A ``ServerProxy`` for ``args``; a bearer token goes in every request's headers."""
    url = server_url(args)
    token = args.token if args.token is not None else os.environ.get("IMAGEPIPE_TOKEN")
    transport = None
    if token:
        kind = xmlrpc.client.SafeTransport if url.startswith("https:") else xmlrpc.client.Transport
        transport = kind(headers=[("Authorization", f"Bearer {token}")])
    return xmlrpc.client.ServerProxy(url, transport=transport, allow_none=True)


def describe(error):
    """A one-line message for a failed call, never showing credentials."""
    if isinstance(error, xmlrpc.client.Fault):
        return f"fault {error.faultCode}: {error.faultString}"
    if isinstance(error, xmlrpc.client.ProtocolError):
        # error.url would show the password: leave it out.
        return f"HTTP {error.errcode} {error.errmsg}"
    return f"{type(error).__name__}: {error}"


def call(method, *arguments):
    """Run one XML-RPC call; ``Unreachable`` when the server cannot be reached."""
    try:
        return method(*arguments)
    except (ConnectionRefusedError, socket.gaierror, socket.timeout) as error:
        raise Unreachable(describe(error)) from None


def store_file(proxy, source, remote_path, store_args):
    """Upload the file ``source`` to ``remote_path``."""
    data = Path(source).read_bytes()
    return call(proxy.store_image, xmlrpc.client.Binary(data), remote_path, *store_args)


def image_files(folder):
    """Image files under ``folder``, recursively, sorted, skipping hidden entries."""
    found = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            extension = name.rpartition(".")[2].lower() if "." in name else ""
            if not name.startswith(".") and extension in IMAGE_EXTENSIONS:
                found.append(Path(directory, name))
    return found


def show_progress(done, total, label, stream=sys.stderr):
    """Draw ``[####......] done/total pct% label`` on ``stream``.

    On a terminal the line is redrawn in place; elsewhere (logs, pipes) each
    step is its own line.
    """
    width = 30
    filled = width * done // total if total else width
    percent = 100 * done // total if total else 100
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:3d}% {label}"
    if stream.isatty():
        stream.write("\r\x1b[K" + line + ("\n" if done == total else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


def remote_path(folder, source, prefix):
    """Where ``source`` (a file under ``folder``) goes: its relative path below ``prefix``."""
    relative = source.relative_to(folder).as_posix()
    return f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative


def variant_paths(path, store_args):
    """The paths ``store_image`` writes for ``path`` with ``store_args`` (by the server's
    own path rules, without transliteration), or None when they cannot be told here."""
    from imagepipe.errors import ClientError
    from imagepipe.paths import PathRules

    formats, sizes, _, _ = store_args
    rules = PathRules()
    try:
        if not isinstance(sizes, dict):
            return [rules.variant(rules.clean(path), "", (formats or "").lower() or None)]
        return [rules.variant(rules.clean(path), suffix, (formats.get(suffix) or "").lower()
                              or None) for suffix in sizes]
    except ClientError:
        return None


def manifest(proxy, page=1000):
    """{path: (sha256, bytes)} of everything the node at ``proxy`` stores."""
    found, after = {}, ""
    while True:
        answer = call(proxy.image_manifest, after, page)
        for path, sha256, size in answer["entries"]:
            found[path] = (sha256, size)
        after = answer["next"]
        if not after:
            return found


def compare(mine, theirs):
    """(only in ``mine``, only in ``theirs``, in both but different), each sorted."""
    return (sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine)),
            sorted(path for path in set(mine) & set(theirs) if mine[path] != theirs[path]))


def upload(connect_again, folder, prefix, store_args, jobs=4, progress=None):
    """Upload every image under ``folder`` below ``prefix`` with ``jobs`` calls at a time.

    Resumable: a file is skipped when the node already holds every variant
    it would write (without ``--size``, the stored file's sha256 must be the
    local file's).  ``connect_again()`` gives each worker its own proxy.
    Returns (uploaded, skipped, failures); only an unreachable server stops it.
    """
    import hashlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    files = image_files(folder)
    held = manifest(connect_again())
    todo, skipped = [], 0
    for source in files:
        path = remote_path(folder, source, prefix)
        paths = variant_paths(path, store_args)
        if paths is not None and all(p in held for p in paths) and (
                paths != [path] or store_args[1] is not None
                or held[path][0] == hashlib.sha256(source.read_bytes()).hexdigest()):
            skipped += 1
            continue
        todo.append((source, path))
    if progress is not None:
        progress.total = len(todo)
    local = threading.local()
    failures = []

    def one(item):
        source, path = item
        if not hasattr(local, "proxy"):
            local.proxy = connect_again()
        try:
            store_file(local.proxy, source, path, store_args)
        except Unreachable:
            raise
        except (xmlrpc.client.Error, OSError) as error:
            failures.append((path, describe(error)))
        if progress is not None:
            progress.update(1)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(one, todo):
            pass
    return len(todo) - len(failures), skipped, failures


def upload_folder(proxy, folder, prefix, store_args):
    """Upload every image under ``folder`` below ``prefix``; return the failures.

    A file that fails (fault, HTTP error, unreadable) is reported and skipped;
    only an unreachable server stops the run.
    """
    files = image_files(folder)
    failures = []
    show_progress(0, len(files), "")
    for done, source in enumerate(files, 1):
        relative = source.relative_to(folder).as_posix()
        remote = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative
        try:
            store_file(proxy, source, remote, store_args)
        except Unreachable:
            raise
        except (xmlrpc.client.Error, OSError) as error:
            failures.append((relative, describe(error)))
        show_progress(done, len(files), relative)
    return len(files), failures


def build_parser():
    """The argument parser of the original client (``examples/client.py``)."""
    parser = argparse.ArgumentParser(
        description="Store, move, delete or describe images on an imagepipe server.")
    where = parser.add_argument_group("server")
    where.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    where.add_argument("--port", type=int, default=8085, help="server port (default 8085)")
    where.add_argument("--url", help="full endpoint URL, overrides --host/--port "
                                     "(e.g. https://img.example.com/RPC2)")
    where.add_argument("--user", help="user name for HTTP Basic authentication")
    where.add_argument("--password", help="password for --user (or IMAGEPIPE_PASSWORD; "
                                          "asked for when neither is given)")
    where.add_argument("--token", help="bearer token (or IMAGEPIPE_TOKEN)")

    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("-i", "--image", "-u", "--upload", dest="image", metavar="FILE",
                        help="upload FILE to --remote-path (default: the file's name)")
    action.add_argument("--dir", metavar="DIR",
                        help="upload every image under DIR, keeping relative paths, "
                             "below --remote-path")
    action.add_argument("-d", "--delete", action="store_true", help="delete --remote-path")
    action.add_argument("-m", "--move", metavar="DST", help="move --remote-path to DST")
    action.add_argument("--info", action="store_true", help="describe --remote-path")

    parser.add_argument("--remote-path", metavar="PATH",
                        help="path on the server, relative to its image root "
                             "(a prefix with --dir)")
    store = parser.add_argument_group("storing")
    store.add_argument("--size", action="append", nargs="+", metavar="WORD",
                       help='a variant: SUFFIX W H [FMT] [composite|crop]; SUFFIX "" or - '
                            "for none; repeatable")
    store.add_argument("--format", help="output format of every variant (jpg, png, gif, "
                                        "webp, avif, heic)")
    store.add_argument("--composite", action="store_true",
                       help="pad to exactly W x H on a transparent canvas")
    store.add_argument("--crop", action="store_true", help="fill W x H, then centre-crop")
    return parser


def run(args, parser):
    """Perform the requested action; return the exit code."""
    try:
        store_args = store_arguments(args)
    except ValueError as error:
        parser.error(str(error))
    if (args.delete or args.move or args.info) and not args.remote_path:
        parser.error("--remote-path is required with --delete, --move and --info")
    proxy = connect(args)

    if args.dir is not None:
        if not Path(args.dir).is_dir():
            parser.error(f"--dir {args.dir!r} is not a directory")
        total, failures = upload_folder(proxy, Path(args.dir), args.remote_path or "",
                                        store_args)
        for relative, message in failures:
            print(f"FAILED {relative}: {message}", file=sys.stderr)
        if failures:
            print(f"{len(failures)} of {total} files failed", file=sys.stderr)
            return 1
        print(f"OK ({total} files)")
        return 0

    if args.image is not None:
        result = store_file(proxy, args.image, args.remote_path or Path(args.image).name,
                            store_args)
    elif args.delete:
        result = call(proxy.delete_image, args.remote_path)
    elif args.move:
        result = call(proxy.move_image, args.remote_path, args.move)
    else:
        info = call(proxy.image_info, args.remote_path)
        for key in sorted(info):
            print(f"{key}: {info[key]}")
        return 0
    print(result)
    return 0


def main(argv=None):
    """The original client: parse ``argv`` (default ``sys.argv[1:]``); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args, parser)
    except Unreachable as error:
        print(f"error: cannot reach the server: {error}", file=sys.stderr)
    except (xmlrpc.client.Error, OSError) as error:
        print(f"error: {describe(error)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

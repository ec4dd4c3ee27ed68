"""The ``imagepipe`` command: tools beside the server (``twistd imagepipe`` runs it)."""

import argparse
import os
import sys


def keygen(directory, name):
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` into ``directory``."""
    from zmq.auth import create_certificates

    os.makedirs(directory, mode=0o700, exist_ok=True)
    public, secret = create_certificates(directory, name)
    os.chmod(secret, 0o600)
    return public, secret


def sign(config_file, url):
    """``url`` (a path such as /r/w:300/cat.jpg, or a full URL) with its signature inserted.

    The mount is found by the path's prefix in the config; its dialect parses
    the rest, so a URL it would refuse is refused here, naming why.
    """
    from urllib.parse import parse_qsl, unquote, urlsplit

    from imagepipe import config as configuration
    from imagepipe.web import dialects
    from imagepipe.web.signing import Signer, canonical_path, read_keys

    loaded = configuration.load(config_file)
    if not loaded.http.sign_keys:
        raise ValueError(f"{config_file}: [http] sign_keys is not set")
    parts = urlsplit(url)
    path = unquote(parts.path)
    for mount in loaded.http.mounts:
        if path.startswith(mount.prefix):
            break
    else:
        raise ValueError(f"{parts.path}: no mount has this prefix (mounts: "
                         f"{', '.join(m.prefix for m in loaded.http.mounts) or 'none'})")
    dialect = dialects.named(mount.dialect)
    query = parse_qsl(parts.query, keep_blank_values=True) if parts.query else []
    parsed = dialect.parse(path[len(mount.prefix):], query, mount.settings)
    signer = Signer(read_keys(loaded.http.sign_keys))
    signature = signer.sign(canonical_path(mount.source, parsed))
    rest = parts.path[len(mount.prefix):]
    signed = f"{mount.prefix}{signature}/{rest}" + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}{signed}" if parts.netloc else signed


def _server_options(parser):
    """The options of every command that talks to a node (the original client's)."""
    where = parser.add_argument_group("server")
    where.add_argument("--url", default=None,
                       help="the node's XML-RPC URL (default http://127.0.0.1:8085/RPC2)")
    where.add_argument("--user", help="user name for HTTP Basic authentication")
    where.add_argument("--password", help="password for --user (or IMAGEPIPE_PASSWORD)")
    where.add_argument("--token", help="bearer token (or IMAGEPIPE_TOKEN)")
    parser.set_defaults(host="127.0.0.1", port=8085)


def _store_options(parser):
    store = parser.add_argument_group("storing")
    store.add_argument("--size", action="append", nargs="+", metavar="WORD",
                       help='a variant: SUFFIX W H [FMT] [composite|crop]; SUFFIX "" or - '
                            "for none; repeatable")
    store.add_argument("--format", help="output format of every variant")
    store.add_argument("--composite", action="store_true",
                       help="pad to exactly W x H on a transparent canvas")
    store.add_argument("--crop", action="store_true", help="fill W x H, then centre-crop")


def _client_commands(commands):
    store = commands.add_parser("store", help="store one image (and its variants)")
    store.add_argument("file")
    store.add_argument("path", help="where on the node (default: the file's name)", nargs="?")
    upload = commands.add_parser(
        "upload", help="store every image under a directory, in parallel, resumable",
        description="Upload every image under DIR below PREFIX, keeping relative paths; "
                    "files whose variants the node already holds are skipped.")
    upload.add_argument("directory")
    upload.add_argument("prefix", nargs="?", default="")
    upload.add_argument("--jobs", type=int, default=4, help="calls at a time (default 4)")
    info = commands.add_parser("info", help="describe a stored image")
    info.add_argument("path")
    move = commands.add_parser("move", help="move a stored image (and more, in pairs)")
    move.add_argument("src")
    move.add_argument("dst")
    delete = commands.add_parser("delete", help="delete stored images")
    delete.add_argument("paths", nargs="+")
    status = commands.add_parser("status", help="the node's /status")
    status.add_argument("--json", action="store_true", help="print it as the node sends it")
    verify = commands.add_parser(
        "verify", help="compare two nodes' stored images by path and sha256",
        description="List what is missing or different on each of two nodes (replicas "
                    "should hold the same); exit status 1 when they differ.")
    verify.add_argument("url_a")
    verify.add_argument("url_b")
    for parser in (store, upload, info, move, delete, status, verify):
        _server_options(parser)
    for parser in (store, upload):
        _store_options(parser)


def _run_client(args):
    """A client command; its exit code.  Errors are one line on stderr."""
    import json
    from pathlib import Path

    from imagepipe import client

    def connect(url=None):
        if url is not None:
            args.url = url
        return client.connect(args)

    if args.command in ("store", "upload"):
        store_args = client.store_arguments(args)
    if args.command == "store":
        answer = client.store_file(connect(), args.file, args.path or Path(args.file).name,
                                   store_args)
    elif args.command == "upload":
        folder = Path(args.directory)
        if not folder.is_dir():
            raise ValueError(f"{args.directory}: not a directory")
        from tqdm import tqdm

        with tqdm(unit="file", desc="upload", file=sys.stderr) as bar:
            done, skipped, failures = client.upload(connect, folder, args.prefix, store_args,
                                                    args.jobs, bar)
        for path, message in failures:
            sys.stderr.write(f"FAILED {path}: {message}\n")
        sys.stdout.write(f"{'OK' if not failures else 'FAILED'}: {done} stored, {skipped} "
                         f"already there, {len(failures)} failed\n")
        return 1 if failures else 0
    elif args.command == "info":
        described = client.call(connect().image_info, args.path)
        for key in sorted(described):
            sys.stdout.write(f"{key}: {described[key]}\n")
        return 0
    elif args.command == "move":
        answer = client.call(connect().move_image, args.src, args.dst)
    elif args.command == "delete":
        answer = client.call(connect().delete_image, args.paths)
    elif args.command == "status":
        import urllib.request

        base = (args.url or "http://127.0.0.1:8085/RPC2").rsplit("/RPC2", 1)[0].rstrip("/")
        with urllib.request.urlopen(base + "/status", timeout=30) as reply:
            status = json.loads(reply.read())
        if args.json:
            sys.stdout.write(json.dumps(status, indent=2) + "\n")
        else:
            for key in ("node", "version", "engine", "backend", "in_flight", "capacity"):
                sys.stdout.write(f"{key}: {status.get(key)}\n")
            for peer in status.get("replication", {}).get("peers", []):
                sys.stdout.write(f"peer {peer['endpoint']}: {'up' if peer['up'] else 'DOWN'}, "
                                 f"{peer['behind']} behind\n")
        return 0
    else:
        mine, theirs = client.manifest(connect(args.url_a)), client.manifest(connect(args.url_b))
        only_a, only_b, different = client.compare(mine, theirs)
        for path in only_a:
            sys.stdout.write(f"missing on B: {path}\n")
        for path in only_b:
            sys.stdout.write(f"missing on A: {path}\n")
        for path in different:
            sys.stdout.write(f"different: {path}\n")
        same = len(set(mine) & set(theirs)) - len(different)
        sys.stdout.write(f"{same} the same, {len(only_a)} only on A, {len(only_b)} only on B, "
                         f"{len(different)} different\n")
        return 1 if only_a or only_b or different else 0
    sys.stdout.write(f"{answer}\n")
    return 0


CLIENT_COMMANDS = ("store", "upload", "info", "move", "delete", "status", "verify")


def main(argv=None):
    """Entry point of the ``imagepipe`` console script."""
    parser = argparse.ArgumentParser(prog="imagepipe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _client_commands(commands)
    make = commands.add_parser(
        "keygen", help="write a CURVE key pair for replication",
        description="Write NAME.key (give it to peers: their curve_public_keys directory "
                    "and curve_subscribe_keys) and NAME.key_secret (this node's "
                    "curve_secret_key).")
    make.add_argument("directory")
    make.add_argument("name")
    signer = commands.add_parser(
        "sign", help="print an on-the-fly URL with its signature",
        description="Insert the signature of URL (a path such as /r/w:300/cat.jpg, or a "
                    "full URL) made with the first key of [http] sign_keys.")
    signer.add_argument("-c", "--config", default="imagepipe.ini")
    signer.add_argument("url")
    commands.add_parser("signkey", help="print a new random URL signing key (hex)")
    args = parser.parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        import xmlrpc.client

        from imagepipe import client

        try:
            return _run_client(args)
        except client.Unreachable as error:
            sys.stderr.write(f"imagepipe {args.command}: cannot reach the node: {error}\n")
        except ValueError as error:
            sys.stderr.write(f"imagepipe {args.command}: {error}\n")
        except (xmlrpc.client.Error, OSError) as error:
            sys.stderr.write(f"imagepipe {args.command}: {client.describe(error)}\n")
        return 1
    if args.command == "sign":
        from imagepipe.errors import ConfigError

        try:
            sys.stdout.write(sign(args.config, args.url) + "\n")
        except (ConfigError, OSError, ValueError) as error:
            sys.stderr.write(f"imagepipe sign: {error}\n")
            return 1
        return 0
    if args.command == "signkey":
        import secrets

        sys.stdout.write(secrets.token_hex(32) + "\n")
        return 0
    public, secret = keygen(args.directory, args.name)
    sys.stdout.write(f"public key: {public}\nsecret key: {secret}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

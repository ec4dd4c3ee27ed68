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


def main(argv=None):
    """Entry point of the ``imagepipe`` console script."""
    parser = argparse.ArgumentParser(prog="imagepipe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
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

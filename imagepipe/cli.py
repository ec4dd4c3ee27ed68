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
    args = parser.parse_args(argv)
    public, secret = keygen(args.directory, args.name)
    sys.stdout.write(f"public key: {public}\nsecret key: {secret}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

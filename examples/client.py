#!/usr/bin/env python3
"""The original command-line client of imagepipe, option for option (``client.py --help``).

The client itself is ``imagepipe.client``; the ``imagepipe`` command offers
the same as subcommands (``imagepipe store``, ``upload``, ``info``, ``move``,
``delete``, ``status``, ``verify``).
"""

import sys

from imagepipe.client import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m imagepipe.config`` writes the commented sample config (``imagepipe.ini.dist``)."""

import sys

from imagepipe.config.spec import dist_text

if __name__ == "__main__":
    sys.stdout.write(dist_text())

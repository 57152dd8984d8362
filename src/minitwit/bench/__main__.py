"""``python -m minitwit.bench load|layers|scale|soak|sessions ...`` is ``minitwit bench ...``."""

import sys

from minitwit.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))

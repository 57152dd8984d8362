"""``python -m minitwit.bench load|scale ...`` is ``minitwit bench load|scale ...``."""

import sys

from minitwit.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))

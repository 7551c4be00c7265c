"""``python -m diffguide.training ...`` is ``diffguide train ...``."""
import sys

from diffguide.cli import main

sys.exit(main(["train", *sys.argv[1:]]))

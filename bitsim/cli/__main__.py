"""``python -m bitsim.cli ...``: the same as the ``bitsim`` command."""
import sys

from bitsim.cli import main

sys.exit(main())

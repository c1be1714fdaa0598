"""``python -m pixloom ...`` (and ``torchrun ... -m pixloom train ...``): the ``pixloom`` command."""

import sys

from pixloom.cli import main

sys.exit(main())

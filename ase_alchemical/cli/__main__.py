"""``python -m ase_alchemical.cli``: the ``ase-alchemical`` command."""

import sys

from . import main

sys.exit(main())

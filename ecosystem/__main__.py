"""``python -m ecosystem`` runs the command line."""

import sys

from ecosystem.cli import main

sys.exit(main())

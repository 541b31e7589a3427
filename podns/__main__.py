"""`python -m podns` is the `podns` command."""

import sys

from podns.cli import main

sys.exit(main())

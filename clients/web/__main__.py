"""`python -m clients.web`: the same as `loyalty-ledger web`."""

import sys

from clients.web.serve import main

sys.exit(main())

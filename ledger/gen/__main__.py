"""`python -m ledger.gen`: regenerate the stubs from proto/."""

import sys

from ledger.gen.codegen import main

sys.exit(main())

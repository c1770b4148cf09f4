import sys

from ledger.apidocs import main

sys.exit(main())

"""Entry point: `python server.py [--listen HOST:PORT]` is `loyalty-ledger serve`."""

import sys

from ledger.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))

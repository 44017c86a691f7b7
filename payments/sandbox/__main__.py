import sys

from payments.sandbox.server import main

if __name__ == "__main__":
    sys.exit(main())

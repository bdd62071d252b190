import sys

from pareco.cli import main

sys.exit(main())

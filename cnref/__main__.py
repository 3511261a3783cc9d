"""`python -m cnref <verb>`: see cnref.cli."""
import sys

from .cli import main

sys.exit(main())

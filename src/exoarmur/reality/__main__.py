"""``python -m exoarmur.reality --child SPEC``: one child of a reality run."""

import sys

from .child import child_main

sys.exit(child_main(sys.argv[1:], sys.stdin, sys.stdout))

"""The golden demo from a source checkout: the same story as ``exoarmur demo golden``.

    python demos/canonical_truth_reconstruction_demo.py [HOME]

HOME defaults to ./.exoarmur (made if missing).
"""

import sys
from pathlib import Path

from exoarmur.demo_golden import print_golden, run_golden

run = run_golden(Path(sys.argv[1] if len(sys.argv) > 1 else ".exoarmur"))
print_golden(run)
sys.exit(0 if run.passed else 1)

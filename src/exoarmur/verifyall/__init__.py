"""``exoarmur verify-all``: every demo twice in fresh homes, every home verified, the tests.

The registry (:mod:`.registry`) names each demo, how to run it and which
markers it must print; :mod:`.markers` checks a run's output (pure);
:mod:`.runs` runs the demos as child processes of the same interpreter,
verifies their homes with ``exoarmur replay verify`` and ``exoarmur verify``,
and, in a source checkout with the dev extra, runs the test suite in random
order. Nothing here decides anything about an intent: it only reads what the
demos print and what the verifiers say, and fails closed on anything else.
"""

from .registry import DEMOS, Demo
from .runs import DemoVerdict, SuiteVerdict, verify_all

__all__ = ["DEMOS", "Demo", "DemoVerdict", "SuiteVerdict", "verify_all"]

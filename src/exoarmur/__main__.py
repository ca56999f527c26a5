"""``python -m exoarmur``: the same command as ``exoarmur``, for the interpreter at hand.

``exoarmur verify-all`` runs the demos through it, so a child process uses the
very interpreter and installation that started it, whatever is on ``PATH``.
"""

from .cli import main

main()

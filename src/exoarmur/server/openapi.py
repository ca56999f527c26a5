"""The OpenAPI document, as committed in docs/openapi.json.

Regenerate after changing the API (a test fails while they differ)::

    python -m exoarmur.server.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .app import _application
from .limits import Limits


def document() -> dict[str, Any]:
    """The document ``/openapi.json`` serves (it needs no governor)."""
    return _application(Limits()).openapi()


def render() -> str:
    """Pretty, with sorted keys: the committed file's exact text."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":  # pragma: no cover - run as `python -m`
    main()

"""Policy bundles: the Cedar text a decision was made under, and its hash.

A bundle is the set of ``.cedar`` files of one directory (and an optional
``schema.cedarschema``), sorted by name. Its hash is taken over canonical
bytes of that content, so the same policies give the same hash on any
machine, whatever the directory is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..encoding import content_hash
from ..errors import PolicyError

SCHEMA_FILE = "schema.cedarschema"
MAX_POLICY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PolicyBundle:
    files: tuple[tuple[str, str], ...]
    schema: str | None = None

    @classmethod
    def from_dir(cls, path: Path) -> PolicyBundle:
        if not path.is_dir():
            raise PolicyError(f"policy directory {path} does not exist")
        files = []
        total = 0
        for file in sorted(path.glob("*.cedar")):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyError(f"{file}: cannot read policy: {exc}") from None
            total += len(text)
            files.append((file.name, text))
        if not files:
            raise PolicyError(f"policy directory {path} holds no .cedar files")
        if total > MAX_POLICY_BYTES:
            raise PolicyError(f"policy directory {path} exceeds {MAX_POLICY_BYTES} bytes")
        schema_path = path / SCHEMA_FILE
        try:
            schema = schema_path.read_text(encoding="utf-8") if schema_path.exists() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{schema_path}: cannot read schema: {exc}") from None
        return cls(tuple(files), schema)

    @classmethod
    def from_text(cls, text: str, name: str = "policy.cedar") -> PolicyBundle:
        return cls(((name, text),))

    @classmethod
    def from_canonical(cls, content: dict[str, Any]) -> PolicyBundle:
        """The bundle as a ``policy.activated`` event holds it."""
        if content.get("format") != "exoarmur.policy-bundle/v1":
            raise PolicyError(f"unknown policy bundle format {content.get('format')!r}")
        files = tuple(sorted((str(k), str(v)) for k, v in content["files"].items()))
        schema = content.get("schema")
        return cls(files, None if schema is None else str(schema))

    def to_canonical(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "format": "exoarmur.policy-bundle/v1",
            "files": dict(self.files),
        }
        if self.schema is not None:
            content["schema"] = self.schema
        return content

    @property
    def hash(self) -> str:
        return content_hash(self.to_canonical())

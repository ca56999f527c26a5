"""Ed25519 signing keys: their names, ids and strings, and the key file on disk.

Keys are named and identified the way the C2SP signed-note format
(c2sp.org/signed-note) names them, and written in the strings of Go's
golang.org/x/mod/sumdb/note, so that a checkpoint signed here verifies with
any signed-note implementation and their verifier keys load here::

    key id         SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]
    verifier key   <name>+<hex key id>+base64(0x01 || 32-byte public key)
    signer key     PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || 32-byte seed)

A key name is non-empty UTF-8 with no Unicode space, no plus and no control
character; ``exoarmur.local/3f2a9c1d`` is a typical one.

Only :func:`write_signing_key` and :func:`load_signing_key` touch the disk.
Nothing here may log, print, or put into an error message a private key's
bytes: messages name the file and the problem, never the content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import InputError, KeyFileError

__all__ = [
    "SigningKey",
    "Verifier",
    "is_valid_key_name",
    "load_signing_key",
    "write_signing_key",
]

# The signature type byte signed-note assigns to Ed25519.
_ED25519 = 0x01
_SIGNER_PREFIX = "PRIVATE+KEY+"
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
# A signer key is about 60 bytes plus its name; anything much larger is not one,
# and reading it whole would let a wrong path fill memory.
_MAX_KEY_FILE_BYTES = 4096
_NAME_RULE = "a key name is non-empty UTF-8 without spaces, plus signs or control characters"


def is_valid_key_name(name: str) -> bool:
    """Whether ``name`` can name a key: non-empty UTF-8, no space, plus or control character."""
    if not name or "+" in name:
        return False
    if any(ch.isspace() or ch < " " for ch in name):
        return False
    return _is_utf8(name)


def _is_utf8(text: str) -> bool:
    # A Python str can hold lone surrogates, which have no UTF-8 encoding.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode_canonical(text: str) -> bytes | None:
    """Standard, padded base64 in its one canonical spelling, or None.

    Go's decoder ignores the unused low bits of the last character; this one
    does not, so a signed note has exactly one spelling and any changed
    character is noticed. Shared with ``checkpoint`` (same package).
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _key_id(name: str, public_key: bytes) -> bytes:
    material = name.encode("utf-8") + b"\n" + bytes([_ED25519]) + public_key
    return hashlib.sha256(material).digest()[:4]


class _Malformed(Exception):
    """Why a key string does not parse; callers turn it into a KeyFileError."""


def _parse_key_string(text: str, what: str) -> tuple[str, bytes, bytes]:
    """``<name>+<hex key id>+<base64(0x01 || 32 bytes)>`` as (name, key id, 32 bytes)."""
    # The name holds no plus, but the base64 may: split at the first two only.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise _Malformed(f"expected <name>+<key id>+<{what}>")
    name, hex_id, encoded = parts
    if not is_valid_key_name(name):
        raise _Malformed("the key name is empty or holds a space, plus or control character")
    if not _KEY_ID_HEX.fullmatch(hex_id):
        raise _Malformed("the key id is not 8 lowercase hex digits")
    raw = _b64decode_canonical(encoded)
    if raw is None or not raw:
        raise _Malformed(f"the {what} is not canonical base64")
    if raw[0] != _ED25519:
        raise _Malformed(f"signature type 0x{raw[0]:02x} is not Ed25519 (0x01)")
    if len(raw) != 33:
        raise _Malformed(f"the {what} is {len(raw) - 1} bytes, Ed25519 needs 32")
    return name, bytes.fromhex(hex_id), raw[1:]


def _shorten(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "...")


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key: checks signatures made by one :class:`SigningKey`."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise InputError(f"invalid key name {_shorten(self.name)}: {_NAME_RULE}")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise InputError("an Ed25519 public key is 32 bytes")
        object.__setattr__(self, "key_id", _key_id(self.name, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse a verifier key ``<name>+<hex key id>+<base64(0x01 || public key)>``.

        Raises :class:`KeyFileError` if it is malformed, not Ed25519, or its key
        id does not match its name and key.
        """
        try:
            name, key_id, public_key = _parse_key_string(vkey, "public key")
        except _Malformed as exc:
            raise KeyFileError(f"malformed verifier key {_shorten(vkey)}: {exc}") from None
        verifier = cls(name, public_key)
        if verifier.key_id != key_id:
            raise KeyFileError(
                f"malformed verifier key {_shorten(vkey)}: "
                "the key id does not match the name and key"
            )
        return verifier

    def verifier_key(self) -> str:
        """The verifier key string, as :meth:`from_string` reads it."""
        encoded = base64.b64encode(bytes([_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """A named Ed25519 private key. Its ``repr`` shows the name and key id only."""

    __slots__ = ("_private", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self._verifier = Verifier(name, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A new key from the operating system's randomness.

        Raises :class:`InputError` if ``name`` is not a valid key name.
        """
        if not is_valid_key_name(name):
            raise InputError(f"invalid key name {_shorten(name)}: {_NAME_RULE}")
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> SigningKey:
        """The key with this 32-byte RFC 8032 seed (deterministic keys for tests and replays)."""
        if len(seed) != 32:
            raise InputError("an Ed25519 seed is 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_string(cls, skey: str) -> SigningKey:
        """Parse a Go-style signer key ``PRIVATE+KEY+<name>+<hex key id>+<base64 seed>``.

        Raises :class:`KeyFileError` if it is malformed or its key id does not
        match the key derived from the seed (a corrupted or tampered key).
        """
        try:
            return cls._parse(skey)
        except _Malformed as exc:
            raise KeyFileError(f"malformed signer key: {exc}") from None

    @classmethod
    def _parse(cls, skey: str) -> SigningKey:
        if not skey.startswith(_SIGNER_PREFIX):
            raise _Malformed(f"it does not start with {_SIGNER_PREFIX}")
        name, key_id, seed = _parse_key_string(skey[len(_SIGNER_PREFIX) :], "seed")
        key = cls.from_seed(name, seed)
        if key.key_id() != key_id:
            raise _Malformed(
                f"key id {key_id.hex()} does not match the key (corrupted or tampered with)"
            )
        return key

    @property
    def name(self) -> str:
        return self._verifier.name

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def public_bytes(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._verifier.public_key

    def key_id(self) -> bytes:
        """The 4-byte signed-note key id."""
        return self._verifier.key_id

    def verifier(self) -> Verifier:
        return self._verifier

    def verifier_key(self) -> str:
        """The public verifier key string, to hand to whoever checks checkpoints."""
        return self._verifier.verifier_key()

    def signer_key(self) -> str:
        """The secret signer key string (Go's format), as written to the key file."""
        seed = self._private.private_bytes_raw()
        encoded = base64.b64encode(bytes([_ED25519]) + seed).decode("ascii")
        return f"{_SIGNER_PREFIX}{self.name}+{self.key_id().hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.key_id().hex()})"


def write_signing_key(path: Path, key: SigningKey) -> None:
    """Write ``key`` to a new file at ``path``, readable by its owner only.

    The parent directory is created with mode 0700 if missing. Raises
    :class:`KeyFileError` if ``path`` exists (a key is never overwritten:
    that would orphan every checkpoint it signed) or cannot be written.
    """
    data = (key.signer_key() + "\n").encode("utf-8")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(
            f"cannot create the directory of signing key {path}: {exc.strerror}"
        ) from None
    try:
        # The mode goes to open() itself, so the file is never readable by
        # others, not even between its creation and a chmod. O_EXCL also
        # refuses to follow a symlink planted at the path.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise KeyFileError(f"signing key {path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create signing key {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        # A half-written key would fail to load later, far from the cause.
        path.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write signing key {path}: {exc.strerror}") from None


def load_signing_key(path: Path) -> SigningKey:
    """Read the signing key at ``path``.

    Raises :class:`KeyFileError`, naming the path and the problem, if the file
    is missing or unreadable, if its group or others have any access, or if
    its content is malformed or tampered with.
    """
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang us before the
        # regular-file check below; it changes nothing for a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"signing key {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read signing key {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"signing key {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            access = "readable" if mode & 0o044 else "accessible"
            raise KeyFileError(
                f"signing key {path} is {access} by others (mode {mode:04o}); run chmod 600 {path}"
            )
        data = _read_at_most(fd, _MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read signing key {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(
            f"signing key {path} is malformed: larger than {_MAX_KEY_FILE_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"signing key {path} is malformed: not UTF-8 text") from None
    try:
        # Written with a final newline; an editor may have dropped it.
        return SigningKey._parse(text.removesuffix("\n"))
    except _Malformed as exc:
        raise KeyFileError(f"signing key {path} is malformed: {exc}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)

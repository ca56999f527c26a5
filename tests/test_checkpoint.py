"""Signed notes and checkpoints: published vectors, malformed inputs, round trips, tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exoarmur.errors import CheckpointError, InputError
from exoarmur.ledger import checkpoint
from exoarmur.ledger.checkpoint import (
    MAX_NOTE_BYTES,
    MAX_NOTE_SIGNATURES,
    Checkpoint,
    open_checkpoint,
    open_note,
    parse_checkpoint_body,
    sign_checkpoint,
    sign_note,
)
from exoarmur.ledger.keys import SigningKey, Verifier

# Published vectors, used as data only.
#
# golang.org/x/mod, sumdb/note/note.go (package documentation) and
# sumdb/note/note_test.go (TestSign, TestOpen).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# The worked example of c2sp.org/signed-note (C2SP/C2SP, signed-note.md at
# d4c16da, as reproduced by other implementations).
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# The examples of c2sp.org/signed-note and c2sp.org/tlog-checkpoint (current
# C2SP/C2SP main). Their public keys are not published, so they test parsing.
QUASIMODO_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
SOFA_NOTE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

PETER = Verifier.from_string(PETER_VKEY)
ENOCH = Verifier.from_string(ENOCH_VKEY)
KEY = SigningKey.from_seed("exoarmur.local/3f2a9c1d", bytes(range(32)))
ROOT = bytes.fromhex("0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62")


def test_exported_members() -> None:
    assert sorted(checkpoint.__all__) == [
        "Checkpoint",
        "MAX_NOTE_BYTES",
        "MAX_NOTE_SIGNATURES",
        "open_checkpoint",
        "open_note",
        "parse_checkpoint_body",
        "sign_checkpoint",
        "sign_note",
        "split_note",
    ]


# --- published vectors -------------------------------------------------------------------


def test_go_note_is_signed_byte_for_byte() -> None:
    assert sign_note(PETER_TEXT, [SigningKey.from_string(PETER_SKEY)]) == (
        PETER_TEXT + "\n" + PETER_SIG
    )


def test_go_note_opens() -> None:
    assert open_note(PETER_TEXT + "\n" + PETER_SIG, [PETER]) == PETER_TEXT


def test_spec_note_opens() -> None:
    assert open_note(FOO_NOTE, [Verifier.from_string(FOO_VKEY)]) == "This is an example message.\n"


@pytest.mark.parametrize(
    ("verifiers", "opens"),
    [
        ([PETER], True),
        ([ENOCH], True),
        ([PETER, ENOCH], True),
        ([ENOCH, PETER, ENOCH], True),  # an identical verifier twice is harmless
        ([Verifier.from_string(FOO_VKEY)], False),
        ([], False),
    ],
)
def test_cosigned_go_note_opens_for_either_signer(verifiers: list[Verifier], opens: bool) -> None:
    note = PETER_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    if opens:
        assert open_note(note, verifiers) == PETER_TEXT
    else:
        with pytest.raises(CheckpointError, match="no signature by"):
            open_note(note, verifiers)


def test_spec_examples_parse_but_are_not_trusted() -> None:
    # Well-formed (an empty line inside the text is allowed), merely unsigned by us.
    for note in (QUASIMODO_NOTE, SOFA_NOTE):
        with pytest.raises(CheckpointError, match=r"no signature by exoarmur\.local/3f2a9c1d"):
            open_note(note, [KEY.verifier()])


def test_spec_checkpoint_body_parses_and_re_serializes() -> None:
    body = SOFA_NOTE[: SOFA_NOTE.index("\n\n") + 1]
    parsed = parse_checkpoint_body(body)
    assert parsed == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert parsed.body() == body


# --- the signed-note rules ---------------------------------------------------------------

_NOTE = PETER_TEXT + "\n" + PETER_SIG
_BAD_NOTES = {
    # The first eight after Go's TestOpen.
    "text only": PETER_TEXT,
    "no signature line": PETER_TEXT + "\n",
    "no final newline": _NOTE[:-1],
    "control character": "\x01" + _NOTE,
    "lone surrogate (not UTF-8)": "\udcff" + _NOTE,
    "key name with a space": PETER_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
    "line after the signatures": _NOTE + "Unexpected line.\n",
    "101 signatures": PETER_TEXT + "\n" + PETER_SIG * (MAX_NOTE_SIGNATURES + 1),
    "carriage return": _NOTE.replace("\n", "\r\n"),
    "tab": _NOTE.replace(" ", "\t", 1),
    "hyphen for em dash": PETER_TEXT + "\n" + PETER_SIG.replace("—", "-"),
    "no space after the dash": PETER_TEXT + "\n" + PETER_SIG.replace("— ", "—"),
    "no signature after the name": PETER_TEXT + "\n— PeterNeumann\n",
    "empty signature": PETER_TEXT + "\n— PeterNeumann \n",
    "two spaces": PETER_TEXT + "\n" + PETER_SIG.replace(" x08", "  x08"),
    "url-safe base64": PETER_TEXT + "\n" + PETER_SIG.replace("/", "_"),
    "unpadded base64": PETER_TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),
    # The last character's unused bits are not zero: Go would decode the same bytes.
    "non-canonical base64": PETER_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AN=\n"),
    "key id but no signature": PETER_TEXT + "\n— PeterNeumann x08gow==\n",
    "over 1 MiB": "a\n" * (MAX_NOTE_BYTES // 2) + "\n" + PETER_SIG,
    "over 1 MiB in UTF-8": "é" * (MAX_NOTE_BYTES // 2) + "\n\n" + PETER_SIG,
}


@pytest.mark.parametrize("case", sorted(_BAD_NOTES))
def test_malformed_note_is_refused(case: str) -> None:
    with pytest.raises(CheckpointError, match=r"^malformed note: "):
        open_note(_BAD_NOTES[case], [PETER])


def test_one_hundred_signatures_are_accepted() -> None:
    note = PETER_TEXT + "\n" + ENOCH_SIG * (MAX_NOTE_SIGNATURES - 1) + PETER_SIG
    assert open_note(note, [PETER]) == PETER_TEXT


def test_bad_signature_by_known_key_rejects_the_note() -> None:
    # After Go's TestOpen: four characters spliced into the signature.
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(CheckpointError, match=r"^bad signature by PeterNeumann\+c74f20a3"):
        open_note(PETER_TEXT + "\n" + bad, [PETER])


def test_bad_signature_rejects_even_next_to_a_good_one() -> None:
    # Go verifies only the first of repeated signatures by a key; the spec says
    # every signature by a known key must verify.
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    for block in (PETER_SIG + bad, bad + PETER_SIG):
        with pytest.raises(CheckpointError, match=r"^bad signature"):
            open_note(PETER_TEXT + "\n" + block, [PETER])


def test_bad_signature_by_unknown_key_is_ignored() -> None:
    bad_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert open_note(PETER_TEXT + "\n" + PETER_SIG + bad_enoch, [PETER]) == PETER_TEXT


def test_same_name_other_key_id_is_ignored() -> None:
    impostor = SigningKey.from_seed("PeterNeumann", bytes(32))
    note = sign_note(PETER_TEXT, [impostor])
    with pytest.raises(CheckpointError, match="no signature by PeterNeumann\\+c74f20a3"):
        open_note(note, [PETER])


def test_same_key_id_other_name_is_ignored() -> None:
    renamed = PETER_SIG.replace("PeterNeumann", "PaulNeumann")
    with pytest.raises(CheckpointError, match="no signature by"):
        open_note(PETER_TEXT + "\n" + renamed, [PETER])


def test_verifiers_colliding_on_name_and_key_id_are_refused() -> None:
    forged = Verifier("PeterNeumann", bytes(32))
    object.__setattr__(forged, "key_id", PETER.key_id)  # as a tampered trust list would
    with pytest.raises(InputError, match="share key id c74f20a3 but not their key"):
        open_note(_NOTE, [PETER, forged])


def test_text_may_hold_empty_lines_and_signature_like_lines() -> None:
    text = "first\n\n— PeterNeumann AAAA\n\nlast\n\n"
    note = sign_note(text, [KEY])
    assert open_note(note, [KEY.verifier()]) == text


def test_note_text_can_be_a_single_newline() -> None:
    assert open_note(sign_note("\n", [KEY]), [KEY.verifier()]) == "\n"


@pytest.mark.parametrize(
    ("text", "keys", "problem"),
    [
        ("no newline", [KEY], "must end with a newline"),
        ("", [KEY], "must end with a newline"),
        ("a\rb\n", [KEY], "control character U\\+000D"),
        ("\udcff\n", [KEY], "not valid UTF-8"),
        ("fine\n", [], "at least one signing key"),
        ("fine\n", [KEY, KEY], "is given twice"),
        ("a" * MAX_NOTE_BYTES + "\n", [KEY], "larger than 1 MiB"),
    ],
)
def test_sign_note_refuses_what_could_not_be_opened(
    text: str, keys: list[SigningKey], problem: str
) -> None:
    with pytest.raises(InputError, match=problem):
        sign_note(text, keys)


def test_sign_note_refuses_more_signatures_than_open_accepts() -> None:
    keys = [SigningKey.from_seed(f"k{i}", bytes([i]) * 32) for i in range(101)]
    with pytest.raises(InputError, match="at most 100 signatures"):
        sign_note("x\n", keys)


def test_multiple_signers() -> None:
    other = SigningKey.from_seed("witness.example/w1", bytes(32))
    note = sign_note("x\n", [KEY, other])
    assert note.count("\n— ") == 2
    assert open_note(note, [other.verifier()]) == "x\n"
    assert open_note(note, [KEY.verifier()]) == "x\n"


# --- checkpoints -------------------------------------------------------------------------


def test_checkpoint_body_format() -> None:
    cp = Checkpoint("exoarmur.local/3f2a9c1d/acme", 0, bytes(32), ("ext one", "two"))
    assert cp.body() == (
        "exoarmur.local/3f2a9c1d/acme\n"
        "0\n"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        "ext one\n"
        "two\n"
    )


def test_checkpoint_round_trip_through_signed_note() -> None:
    cp = Checkpoint("exoarmur.local/3f2a9c1d/acme", 42, ROOT)
    note = sign_checkpoint(cp, KEY)
    assert note.startswith(cp.body() + "\n— exoarmur.local/3f2a9c1d ")
    assert open_checkpoint(note, KEY.verifier()) == cp


def test_origins_with_spaces_are_accepted() -> None:
    # tlog-checkpoint recommends but does not require URL-like origins;
    # Rekor's are "rekor.sigstore.dev - <tree id>".
    cp = Checkpoint("rekor.sigstore.dev - 1193050959916656506", 7, ROOT)
    assert parse_checkpoint_body(cp.body()) == cp


def test_signed_note_that_is_not_a_checkpoint() -> None:
    note = sign_note("hello\n", [KEY])
    with pytest.raises(CheckpointError, match=r"^malformed checkpoint body: 1 line"):
        open_checkpoint(note, KEY.verifier())


def test_checkpoint_from_another_key_is_refused() -> None:
    note = sign_checkpoint(Checkpoint("o", 1, ROOT), SigningKey.from_seed("o", bytes(32)))
    with pytest.raises(CheckpointError, match=r"no signature by exoarmur\.local/3f2a9c1d"):
        open_checkpoint(note, KEY.verifier())


_R = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
_BAD_BODIES = {
    "no final newline": f"o\n1\n{_R}",
    "two lines": "o\n1\n",
    "empty": "",
    "empty origin": f"\n1\n{_R}\n",
    "leading zero": f"o\n01\n{_R}\n",
    "plus sign": f"o\n+1\n{_R}\n",
    "minus sign": f"o\n-1\n{_R}\n",
    "space before size": f"o\n 1\n{_R}\n",
    "underscore in size": f"o\n1_000\n{_R}\n",
    "arabic-indic digit": f"o\n\u0661\n{_R}\n",
    "hex size": f"o\n0x10\n{_R}\n",
    "empty size": f"o\n\n{_R}\n",
    "size of 2**64": f"o\n{2**64}\n{_R}\n",
    "size of 21 digits": f"o\n{10**20}\n{_R}\n",
    "root of 31 bytes": f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n",
    "root of 33 bytes": f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n",
    "unpadded root": f"o\n1\n{_R.rstrip('=')}\n",
    "url-safe root": f"o\n1\n{_R.replace('/', '_')}\n",
    "non-canonical root": f"o\n1\n{_R.replace('2I=', '2J=')}\n",
    "hex root": f"o\n1\n{ROOT.hex()}\n",
    "empty extension line": f"o\n1\n{_R}\n\n",
    "empty line between extensions": f"o\n1\n{_R}\na\n\nb\n",
    "carriage return in origin": f"o\r\n1\n{_R}\n",
    "control character in extension": f"o\n1\n{_R}\na\x00\n",
    "lone surrogate in origin": f"\udcff\n1\n{_R}\n",
    "over 1 MiB": f"o\n1\n{_R}\n" + "e\n" * MAX_NOTE_BYTES,
}


@pytest.mark.parametrize("case", sorted(_BAD_BODIES))
def test_malformed_checkpoint_body_is_refused(case: str) -> None:
    with pytest.raises(CheckpointError, match=r"^malformed checkpoint body: "):
        parse_checkpoint_body(_BAD_BODIES[case])


def test_largest_tree_size() -> None:
    assert parse_checkpoint_body(f"o\n{2**64 - 1}\n{_R}\n").size == 2**64 - 1


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (("", 1, ROOT, ()), "the origin is empty"),
        (("a\nb", 1, ROOT, ()), "the origin holds a line break"),
        (("a\tb", 1, ROOT, ()), "the origin holds the control character U\\+0009"),
        (("o", -1, ROOT, ()), "tree size -1"),
        (("o", 2**64, ROOT, ()), "tree size"),
        (("o", True, ROOT, ()), "tree size True"),
        (("o", 1.0, ROOT, ()), "tree size 1.0"),
        (("o", 1, ROOT[:31], ()), "root hash is not 32 bytes"),
        (("o", 1, ROOT.hex(), ()), "root hash is not 32 bytes"),
        (("o", 1, ROOT, ["e"]), "not a tuple"),
        (("o", 1, ROOT, ("",)), "an extension line is empty"),
        (("o", 1, ROOT, (1,)), "an extension line is not text"),
        (("o", 1, ROOT, ("a\nb",)), "an extension line holds a line break"),
        (("o", 1, ROOT, ("\udcff",)), "an extension line is not valid UTF-8"),
        ((None, 1, ROOT, ()), "the origin is not text"),
    ],
)
def test_checkpoint_fields_are_validated(fields: tuple[object, ...], problem: str) -> None:
    with pytest.raises(CheckpointError, match="^invalid checkpoint: .*" + problem):
        Checkpoint(*fields)  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------

_line_chars = st.characters(codec="utf-8", min_codepoint=0x20)
_origins = st.text(_line_chars, min_size=1, max_size=60)
_checkpoints = st.builds(
    Checkpoint,
    origin=_origins,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(_line_chars, min_size=1, max_size=30), max_size=3).map(tuple),
)


@given(cp=_checkpoints)
def test_checkpoint_round_trips(cp: Checkpoint) -> None:
    assert parse_checkpoint_body(cp.body()) == cp
    assert open_checkpoint(sign_checkpoint(cp, KEY), KEY.verifier()) == cp


@given(
    text=st.text(st.characters(codec="utf-8", min_codepoint=0x20) | st.just("\n"), max_size=200),
    name=st.text(
        st.characters(codec="utf-8", min_codepoint=0x21).filter(
            lambda c: not c.isspace() and c != "+"
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_note_round_trips(text: str, name: str) -> None:
    text += "\n"
    key = SigningKey.from_seed(name, bytes(32))
    assert open_note(sign_note(text, [key]), [key.verifier()]) == text


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(cp=_checkpoints, data=st.data())
def test_any_changed_byte_is_refused(cp: Checkpoint, data: st.DataObject) -> None:
    note = sign_checkpoint(cp, KEY).encode("utf-8")
    for _ in range(20):
        at = data.draw(st.integers(0, len(note) - 1), label="position")
        delta = data.draw(st.integers(1, 255), label="delta")
        changed = note[:at] + bytes([(note[at] + delta) % 256]) + note[at + 1 :]
        # Invalid UTF-8 reaches us as lone surrogates, as from a lenient decoder.
        with pytest.raises(CheckpointError):
            open_checkpoint(changed.decode("utf-8", "surrogateescape"), KEY.verifier())

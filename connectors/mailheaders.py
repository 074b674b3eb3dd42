"""How csops writes header values: plain ASCII words as they are, anything else as its own RFC 2047
encoded words (UTF-8, base64), folded between pieces. Nothing here parses the text as header syntax,
so an ``=?...?=`` in it is written as text, never decoded (connectors/mailbuild.py checks values first
and reads the finished message back)."""

from __future__ import annotations

import base64
import re

__all__ = ["encoded_words", "fold", "phrase", "unstructured"]

# Text sent as typed: printable ASCII words with single spaces. No "=?" (an encoded word's start),
# and words short enough for a line (at most 998 characters); anything else becomes encoded words.
_PLAIN_TEXT = re.compile(r"[!-~]{1,200}(?: [!-~]{1,200})*")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")  # no '=' or '?'
_QUOTABLE = re.compile(r"[ -~]{1,60}")
_WORD_BYTES = 45  # UTF-8 bytes per encoded word: 60 base64 characters, a 72-character word (RFC 2047: <= 75)
_LINE = 78


def encoded_words(text: str, *, at_spaces: bool = False) -> list[str]:
    """``text`` as UTF-8 base64 encoded words, never splitting a character between two words.

    With ``at_spaces`` a word ends after a space of the text where it can, so a reader that keeps
    the space between two words (Python's, in a display name) shows at worst a doubled space.
    """
    words, chunk = [], ""
    for ch in text:
        if chunk and len((chunk + ch).encode("utf-8")) > _WORD_BYTES:
            cut = chunk.rfind(" ") + 1 if at_spaces else 0
            if cut <= 0:
                cut = len(chunk)
            words.append(chunk[:cut])
            chunk = chunk[cut:]
        chunk += ch
    words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def unstructured(text: str) -> list[str]:
    """The pieces (joined by one space, or a fold) that write ``text`` as an unstructured value."""
    if text == "" or (_PLAIN_TEXT.fullmatch(text) and "=?" not in text):
        return text.split(" ")
    return encoded_words(text)


def phrase(name: str) -> list[str]:
    """A display name as pieces: atoms, one quoted string, or atoms and encoded words.

    Readers disagree on the space between two adjacent encoded words in a phrase (RFC 2047 drops
    it, Python keeps it), so each run of words that need encoding becomes one encoded word, and
    only a run too long for one word is split (after a space of its own).
    """
    if _ATOMS.fullmatch(name) and len(name) <= 60:
        return name.split(" ")
    if _QUOTABLE.fullmatch(name) and "=?" not in name:  # readers decode =?...?= even inside quotes
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    if "  " in name:
        return encoded_words(name, at_spaces=True)
    pieces: list[str] = []
    run: list[str] = []
    for word in [*name.split(" "), ""]:
        if word and _ATOMS.fullmatch(word) and len(word) <= 60:
            if run:
                pieces += encoded_words(" ".join(run), at_spaces=True)
                run = []
            pieces.append(word)
        elif word:
            run.append(word)
    if run:
        pieces += encoded_words(" ".join(run), at_spaces=True)
    return pieces


def fold(name: str, pieces: list[str]) -> str:
    """``pieces`` joined by spaces, a space turned into a fold where the line would pass 78."""
    out, width = "", len(name) + 1
    for i, piece in enumerate(pieces):
        if i and width + 1 + len(piece) > _LINE:
            out += "\r\n " + piece
            width = 1 + len(piece)
        else:
            out += (" " if i else "") + piece
            width += (1 if i else 0) + len(piece)
    return out

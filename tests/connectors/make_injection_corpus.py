"""The generated part of injection_corpus.json: header injection, systematically.

Every line break or separator a reader might honour (CR, LF, CRLF, a blank line, NEL, U+2028,
U+2029, NUL) is put into every field a template or account data reaches, raw and inside each form
of RFC 2047 encoded word that decoders have been seen to decode to it: B and Q, upper case,
base64 without padding or with a junk character (``=?utf-8?b?DQo.?=``), an empty charset
(``=??q?=0D=0A...?=``), a space inside the encoded text, a break split over two adjacent words,
other charsets, an RFC 2231 language tag, a word inside a word. Each case says what it smuggles
(an extra Bcc:, Reply-To: or a body of the attacker's) and whether it must be refused or may be
delivered (then exactly as written: test_injection.py checks both).

    .venv/bin/python -m tests.connectors.make_injection_corpus   # rewrite the generated entries

The hand-written entries (without ``"generated": true``) are kept as they are, first.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "injection_corpus.json"

BREAKS = {"CRLF": "\r\n", "LF": "\n", "CR": "\r", "blank line": "\r\n\r\n", "NEL": "\u0085",
          "U+2028": "\u2028", "U+2029": "\u2029", "NUL": "\x00"}
PAYLOADS = {"Bcc": "Bcc: x@evil.example", "Reply-To": "Reply-To: x@evil.example",
            "body": "\r\n\r\nattacker body"}
# Fields, what the refusal calls them, and whether an encoded word there may be delivered as text.
FIELDS = {"subject": ("subject", True), "sender_name": ("sender name", True),
          "idempotency_key": ("idempotency key", True),
          "sender": ("sender", False), "to": ("recipient", False), "category": ("category", False),
          "unsubscribe_url": ("unsubscribe URL", False), "unsubscribe_mailto": ("unsubscribe mailto", False)}


def _q(data: bytes) -> str:
    return "".join(f"={b:02X}" for b in data)


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def forms(brk: str, payload: str) -> dict[str, str]:
    """Every way to carry ``brk`` then ``payload`` in one header value, by name."""
    raw = brk.encode("utf-8")
    q_payload = payload.replace(" ", "_").replace("\r", "=0D").replace("\n", "=0A")
    return {
        "raw": f"Hi{brk}{payload}",
        "B word": f"=?utf-8?b?{_b(raw)}?={payload}",
        "B word, no padding": f"=?utf-8?b?{_b(raw).rstrip('=')}?={payload}",
        "B word, junk character": f"=?utf-8?b?{_b(raw).rstrip('=')}.?={payload}",
        "B word, upper case": f"=?UTF-8?B?{_b(raw + payload.encode())}?=",
        "Q word": f"=?utf-8?q?Hi{_q(raw)}{q_payload}?=",
        "Q word, upper case": f"=?UTF-8?Q?Hi{_q(raw)}{q_payload}?=",
        "empty charset": f"=??q?{_q(raw)}{q_payload}?=",
        "empty charset, B": f"=??b?{_b(raw)}?={payload}",
        "space inside the word": f"=?utf-8?q?Hi {_q(raw)}{q_payload}?=",
        "split over two words": f"=?utf-8?b?{_b(raw[:1])}?= =?utf-8?b?{_b(raw[1:] + payload.encode())}?=",
        "folded words": f"=?utf-8?q?Hi?=\r\n =?utf-8?q?{_q(raw)}{q_payload}?=",
        "latin-1 charset": f"=?iso-8859-1?q?Gr=FC=DFe{_q(raw)}{q_payload}?=",
        "unknown charset": f"=?x-evil?q?{_q(raw)}{q_payload}?=",
        "language tag": f"=?utf-8*en?q?{_q(raw)}{q_payload}?=",
        "word inside a word": f"=?utf-8?b?{_b(f'=?utf-8?q?{_q(raw)}{q_payload}?='.encode())}?=",
    }


def _place(field: str, value: str) -> str:
    """``value`` where the field holds it: an address's local part, a URL's query."""
    if field in ("sender", "to"):
        return f"{value}@example.com"
    if field == "unsubscribe_url":
        return f"https://csops.example/u?t={value}"
    if field == "unsubscribe_mailto":
        return f"mailto:u@example.com?subject={value}"
    if field == "idempotency_key":
        return f"pb:p:{value}:once/mail"
    return value


def generated() -> list[dict[str, Any]]:
    """The generated cases: every field × break × form for Bcc, and the other payloads in text fields."""
    cases = []
    for field, (named, may_deliver) in FIELDS.items():
        for bname, brk in BREAKS.items():
            for pname, payload in PAYLOADS.items():
                if pname != "Bcc" and (field not in ("subject", "sender_name") or bname != "CRLF"):
                    continue  # the other payloads only where text is delivered, with the common break
                if field not in ("subject", "sender_name") and bname not in ("CRLF", "LF", "NEL", "U+2028"):
                    continue
                all_forms = forms(brk, payload)
                chosen = all_forms if field in ("subject", "sender_name") else {
                    k: v for k, v in all_forms.items() if k in ("raw", "B word", "B word, junk character", "Q word",
                                                                "empty charset", "space inside the word")}
                for fname, value in chosen.items():
                    raw_break = any(c in value for c in "\r\n\x00\u0085\u2028\u2029")
                    cases.append({"field": field, "value": _place(field, value),
                                  "why": f"{bname} as {fname}, then {pname}", "named": named,
                                  "expect": "either" if may_deliver and not raw_break else "refused",
                                  "generated": True})
    return cases


def main() -> None:
    hand = [c for c in json.loads(CORPUS.read_text(encoding="utf-8")) if not c.get("generated")]
    lines = [json.dumps(c, ensure_ascii=True) for c in [*hand, *generated()]]
    CORPUS.write_text("[\n " + ",\n ".join(lines) + "\n]\n", encoding="utf-8")
    print(f"{CORPUS}: {len(hand)} hand-written, {len(lines) - len(hand)} generated")


if __name__ == "__main__":
    main()

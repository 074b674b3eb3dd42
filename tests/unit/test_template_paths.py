"""Email template paths stay inside the playbook's folder (issue 11, item 3).

Each form below names a file outside the folder, or a file that cannot be used, in its own way.
Validation must report exactly one problem, at the ``template:`` value, with the right rule; the
playbook must not compile; and the canary text of the file outside must appear nowhere: not in
the problems, not in any compiled playbook's files. The compiler alone refuses them too, so a
caller that skipped validation could not read them either.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from engine.language.compiler import compile_playbook
from engine.language.templatefiles import MAX_TEMPLATE_BYTES
from engine.language.validate import validate_paths

CANARY = "CANARY-SECRET-7f3a"
OUTSIDE, FILE = "template-outside-folder", "template-file"

#: (template value, rule, a part of the message). "{out}" is the folder outside the playbook's.
FORMS: list[tuple[str, str, str]] = [
    ("{out}/secret.txt", OUTSIDE, "is an absolute path"),
    ("/proc/self/environ", OUTSIDE, "is an absolute path"),
    ("/etc/passwd", OUTSIDE, "is an absolute path"),
    ("/dev/zero", OUTSIDE, "is an absolute path"),
    ("//etc/passwd", OUTSIDE, "is an absolute path"),
    ("../out/secret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("./../out/secret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("../../../../../../../../etc/passwd", OUTSIDE, "leaves the playbook's folder with .."),
    ("templates/../../out/secret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("templates/./../../../etc/passwd", OUTSIDE, "leaves the playbook's folder with .."),
    ("..\\out\\secret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("templates\\..\\..\\out\\secret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("%2e%2e/out/secret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("%2E%2E%2Fout%2Fsecret.txt", OUTSIDE, "leaves the playbook's folder with .."),
    ("%2fetc%2fpasswd", OUTSIDE, "is an absolute path"),
    ("C:\\Windows\\win.ini", OUTSIDE, "is an absolute path"),
    ("\\\\server\\share\\secret.txt", OUTSIDE, "is an absolute path"),
    ("~/.bashrc", OUTSIDE, "starts with ~"),
    ("~root/.ssh/id_rsa", OUTSIDE, "starts with ~"),
    ("../" * 2000 + "etc/passwd", OUTSIDE, "leaves the playbook's folder with .."),
    ("link-to-secret.txt", OUTSIDE, "is a link to a file outside the playbook's folder"),
    ("chain-1.txt", OUTSIDE, "is a link to a file outside the playbook's folder"),
    ("linked-folder/secret.txt", OUTSIDE, "is a link to a file outside the playbook's folder"),
    ("templates/link-to-zero", OUTSIDE, "is a link to a file outside the playbook's folder"),
    ("templates/ok.txt\0../../out/secret.txt", FILE, "contains a NUL character"),
    ("templates", FILE, "is a folder, not a file"),
    (".", FILE, "is a folder, not a file"),
    ("pipe", FILE, "is not a regular file"),
    ("loop-1.txt", FILE, "cannot be read"),
    ("a/" * 3000 + "x.txt", FILE, "cannot be read"),
    ("big.txt", FILE, f"is larger than {MAX_TEMPLATE_BYTES:,} bytes"),
    ("latin1.txt", FILE, "is not UTF-8 text"),
    ("templates/missing.txt", FILE, "does not exist"),
]


def make_folders(tmp: Path) -> Path:
    """tmp/out holds the secret; tmp/pb is the playbook's folder, with links and odd files."""
    out, pb = tmp / "out", tmp / "pb"
    out.mkdir()
    (out / "secret.txt").write_text(f"{CANARY} {{{{ account.name }}}}\n", encoding="utf-8")
    (pb / "templates").mkdir(parents=True)
    (pb / "templates" / "ok.txt").write_text("Hello {{ account.name }}\n", encoding="utf-8")
    (pb / "link-to-secret.txt").symlink_to(out / "secret.txt")
    (pb / "chain-2.txt").symlink_to(pb / "link-to-secret.txt")
    (pb / "chain-1.txt").symlink_to("chain-2.txt")
    (pb / "linked-folder").symlink_to(out, target_is_directory=True)
    (pb / "templates" / "link-to-zero").symlink_to("/dev/zero")
    (pb / "templates" / "inside-link.txt").symlink_to("ok.txt")
    (pb / "loop-1.txt").symlink_to("loop-2.txt")
    (pb / "loop-2.txt").symlink_to("loop-1.txt")
    os.mkfifo(pb / "pipe")
    (pb / "big.txt").write_text("x" * (MAX_TEMPLATE_BYTES + 1), encoding="utf-8")
    (pb / "latin1.txt").write_bytes("Grüße".encode("latin-1"))
    return pb


def playbook_text(template: str) -> str:
    # a JSON string is a YAML double-quoted scalar: NULs and backslashes survive as written
    return ("playbook: welcome\ntitle: Welcome\ntriggers:\n  - manual: {}\nsteps:\n  - id: welcome\n    email:\n"
            f"      to: primary_contact\n      subject: Welcome\n      template: {json.dumps(template)}\n")


def test_the_corpus_is_big_enough() -> None:
    assert sum(1 for _, rule, _ in FORMS if rule == OUTSIDE) >= 20
    assert len(FORMS) >= 30


@pytest.mark.parametrize(("template", "rule", "says"), FORMS, ids=[f[0][:40] for f in FORMS])
def test_each_form_is_one_problem_at_the_template_value_and_nothing_is_read(
        tmp_path: Path, template: str, rule: str, says: str) -> None:
    pb = make_folders(tmp_path)
    value = template.replace("{out}", str(tmp_path / "out"))
    path = pb / "p.yaml"
    path.write_text(playbook_text(value), encoding="utf-8")
    start = time.monotonic()
    report = validate_paths([str(path)])
    assert time.monotonic() - start < 5  # the pipe must not block, /dev/zero must not be read
    assert [(p.line, p.col, p.rule) for p in report.problems] == [(10, 17, rule)]
    assert says in report.problems[0].message
    assert CANARY not in report.problems[0].message + report.problems[0].hint
    assert report.playbooks == {} and report.files[0].playbook is None
    with pytest.raises(ValueError, match="template file"):  # the compiler alone refuses it as well
        compile_playbook(yaml.safe_load(playbook_text(value)), str(path))


@pytest.mark.parametrize("template", ["templates/ok.txt", "./templates/ok.txt", "templates/inside-link.txt",
                                      "templates/../templates/ok.txt"])
def test_paths_inside_the_folder_compile_with_the_text(tmp_path: Path, template: str) -> None:
    pb = make_folders(tmp_path)
    path = pb / "p.yaml"
    path.write_text(playbook_text(template), encoding="utf-8")
    report = validate_paths([str(path)])
    assert report.problems == []
    assert report.playbooks["welcome"].files == {template: "Hello {{ account.name }}\n"}
    assert all(CANARY not in text for text in report.playbooks["welcome"].files.values())

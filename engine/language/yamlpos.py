"""A YAML loader that keeps the line and column of every key and value.

PyYAML's composer (libyaml when available) gives the node tree with marks; we build plain Python
values from it ourselves so that we can see what ``yaml.safe_load`` hides: duplicate keys (YAML
keeps the last one silently), an unquoted ``{{ x }}`` read as a mapping, recursive aliases and
alias bombs. Positions are kept in side tables keyed by the path of each value, so the data itself
stays plain JSON-like values that a JSON Schema validator accepts unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from engine.language.problems import Problem, file_problem, make

T = TypeVar("T")

Path = tuple[str | int, ...]

#: (line, col, style, end_line): 0-based start, the scalar style ('' plain, '"', "'", '|', '>')
Mark = tuple[int, int, str, int]

_BLOCKS = re.compile(r"\{\{.*?(?:\}\}|$)|\{%.*?(?:%\}|$)")
MAX_NODES = 20_000
MAX_DEPTH = 60
MAX_BYTES = 1_000_000

# libyaml's parser with the base resolver: we resolve plain values ourselves and keys never (a key
# is its text), which halves the time spent resolving.
_PLAIN = "tag:csops,2026:plain"


class _Loader(getattr(yaml, "CBaseLoader", yaml.BaseLoader)):  # type: ignore[misc]
    """Untagged nodes get a marker tag: we resolve plain values ourselves and keys never (a key is
    its text), and the marker tells an untagged scalar from an explicit !!str."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
_constructor = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = {
    _PLAIN,
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """A parsed file: its data, where every value came from, and the problems seen on the way."""

    path: str
    text: str
    data: Any = None
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    flagged: set[Path] = field(default_factory=set)
    """Values the loader already reported (later checks stay quiet about them)."""

    def pos(self, p: Path) -> tuple[int, int]:
        """Where the value at ``p`` starts; the nearest enclosing value if ``p`` has none."""
        while p:
            mark = self.values.get(p)
            if mark is not None:
                return mark[0], mark[1]
            p = p[:-1]
        mark = self.values.get(())
        return (mark[0], mark[1]) if mark else (0, 0)

    def key_pos(self, p: Path) -> tuple[int, int]:
        """Where the key that holds the value at ``p`` starts (the value itself for list items)."""
        return self.keys.get(p) or self.pos(p)

    def find(self, p: Path, needles: str | tuple[str, ...], line_hint: int = 0, nth: int = 0) -> tuple[int, int]:
        """Where a needle occurs as a whole word inside the scalar at ``p``; else the scalar's start.

        ``needles`` are alternatives tried in order (``steps.a`` or ``steps['a']``); a NUL inside a
        needle marks the spot to point at within it (``steps.\\0a`` points at the ``a``); ``line_hint`` is
        the needle's line within the value, so multi-line block scalars find the right line; ``nth``
        skips earlier occurrences when the same needle is reported more than once in one value.
        """
        mark = self.values.get(p)
        if mark is None or not needles:
            return self.pos(p)
        line, col, style, end = mark
        lines = self.text.splitlines()
        first = line + line_hint + (1 if style in ("|", ">") else 0)  # block text starts below the indicator
        order = list(dict.fromkeys([*range(min(first, end), end + 1), *range(line, end + 1)]))
        for needle in (needles,) if isinstance(needles, str) else needles:
            shift = max(needle.find("\0"), 0)
            needle = needle.replace("\0", "")
            if not needle:
                continue
            pattern = re.compile(_boundary(needle[0], before=True) + re.escape(needle) + _boundary(needle[-1]))
            skip = nth
            for n in order:
                if n >= len(lines):
                    continue
                text = lines[n]
                blocks = [b.span() for b in _BLOCKS.finditer(text)]
                for m in pattern.finditer(text, col if n == line else 0):
                    if blocks and not any(a <= m.start() < b for a, b in blocks):
                        continue  # in a template, names live inside {{ }} and {% %}, not in the text
                    if skip == 0:
                        return n, m.start() + shift
                    skip -= 1
        return line, col


def _boundary(char: str, before: bool = False) -> str:
    """A needle is a whole word (``x`` not in ``xy``) or a whole operator (``=`` not in ``==``)."""
    if char.isalnum() or char == "_":
        return "(?<![\\w.])" if before else "(?!\\w)"
    if char in "=<>!":
        return "(?<![=<>!])" if before else "(?![=<>!])"
    return ""


def load(text: str, path: str) -> Document:
    """Parse ``text``; YAML errors become problems, never exceptions."""
    doc = Document(path=path, text=text)
    if len(text) > MAX_BYTES:
        doc.problems.append(
            make(path, (0, 0), "yaml-syntax", f"the file is larger than {MAX_BYTES} bytes; a playbook is far smaller")
        )
        return doc
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        doc.problems.append(_syntax_problem(path, text, exc))
        return doc
    except yaml.reader.ReaderError as exc:
        at = _offset_to_pos(text, exc.position)
        doc.problems.append(make(path, at, "yaml-syntax", f"unacceptable character #x{exc.character:04x}: {exc.reason}",
                                 "remove the control character; save the file as UTF-8 text"))
        return doc
    except (yaml.YAMLError, RecursionError) as exc:
        doc.problems.append(make(path, (0, 0), "yaml-syntax", f"cannot parse the file: {exc}"))
        return doc
    if node is None:
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, (), 0)
    except _TooBig as exc:
        doc.data = None
        doc.problems.append(make(path, (0, 0), "yaml-syntax", str(exc),
                                 "a playbook is far smaller; check for aliases (*name) that repeat large parts"))
    return doc


def read_checked(path: str | os.PathLike[str], check: Callable[[Document], tuple[T | None, list[Problem]]], *,
                 rule: str, what: str, hint: str) -> tuple[T | None, list[Problem]]:
    """Read a file and ``check`` it; a file that cannot be read is one ``rule`` problem ("cannot read ``what``")."""
    name = os.fspath(path)
    try:
        doc = read(name)
    except OSError as exc:
        return None, [file_problem(name, rule, f"cannot read {what}: {exc.strerror or exc}", hint)]
    return check(doc)


def read(path: str) -> Document:
    """Read and parse a file; raises OSError for I/O problems (the caller reports those)."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start)
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1)
        doc = Document(path=path, text="")
        doc.problems.append(make(path, (line, col), "yaml-syntax",
                                 f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})", "save the file as UTF-8"))
        return doc
    return load(text, path)


class _TooBig(Exception):
    pass


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: yaml.Node, p: Path, depth: int) -> Any:
        if node.tag == _PLAIN and node.__class__ is yaml.ScalarNode:  # most nodes: plain text, numbers
            self.count += 1
            self.doc.values[p] = (node.start_mark.line, node.start_mark.column, node.style or "", node.end_mark.line)
            if node.style:
                return node.value
            return _scalar(node)
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(f"the document has more than {MAX_NODES} values once aliases are expanded")
        if depth > MAX_DEPTH:
            raise _TooBig(f"the document is nested more than {MAX_DEPTH} levels deep")
        start, end = node.start_mark, node.end_mark
        style = getattr(node, "style", None) or ""
        self.doc.values[p] = (start.line, start.column, style if isinstance(node, yaml.ScalarNode) else "", end.line)
        if node.tag not in _PLAIN_TAGS and node.tag != _MERGE:
            self._problem(p, "type", f"the YAML tag {node.tag} is not supported here", "remove the tag")
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        if id(node) in self.active:
            self._problem(p, "type", "this alias refers to itself", "an anchor (&name) cannot contain its own alias")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, p + (i,), depth + 1) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if _is_unquoted_template(node):
                    return self._unquoted_template(node, p)
                return self._mapping(node, p, depth)
        finally:
            self.active.discard(id(node))
        return None

    def _mapping(self, node: yaml.MappingNode, p: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        keys = self.doc.keys
        for knode, vnode in node.value:
            # the common case inline (a plain text key): this loop is most of the loading time
            if knode.__class__ is yaml.ScalarNode and knode.tag == _PLAIN and knode.value != "<<":
                key: str = knode.value
            elif _is_merge(knode):
                merged.extend(self._merge_pairs(vnode, p))
                continue
            else:
                other = self._key(knode, p)
                if other is None:
                    continue
                key = other
            kp = p + (key,)
            mark = knode.start_mark
            if key in out:
                line, col = keys[kp]
                self._at(
                    (mark.line, mark.column), "duplicate-key",
                    f'key "{key}" is already defined at {line + 1}:{col + 1}; YAML would silently keep only this one',
                    "remove one of the two",
                )
            keys[kp] = (mark.line, mark.column)
            out[key] = self.build(vnode, kp, depth + 1)
        for knode, vnode in merged:  # explicit keys win over merged ones, as in YAML
            merged_key = self._key(knode, p)
            if merged_key is not None and merged_key not in out:
                kp = p + (merged_key,)
                keys[kp] = (knode.start_mark.line, knode.start_mark.column)
                out[merged_key] = self.build(vnode, kp, depth + 1)
        return out

    def _merge_pairs(self, vnode: yaml.Node, p: Path) -> list[tuple[yaml.Node, yaml.Node]]:
        sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                self._at((src.start_mark.line, src.start_mark.column), "type",
                         "a merge key (<<) takes a mapping or a list of mappings")
                continue
            pairs.extend(pair for pair in src.value if not _is_merge(pair[0]))
        return pairs

    def _key(self, knode: yaml.Node, p: Path) -> str | None:
        if isinstance(knode, yaml.ScalarNode):
            return str(knode.value)
        at = (knode.start_mark.line, knode.start_mark.column)
        if isinstance(knode, yaml.MappingNode) and _looks_like_braces(knode):
            self._at(at, "unquoted-template", "an unquoted {{ ... }} cannot be a key", 'quote it: "{{ ... }}"')
        else:
            self._at(at, "type", "a key must be plain text, not a list or mapping")
        return None

    def _unquoted_template(self, node: yaml.MappingNode, p: Path) -> str:
        raw = self.doc.text[node.start_mark.index : node.end_mark.index]
        self._problem(p, "unquoted-template",
                      f"{raw} is not quoted, so YAML read it as a mapping instead of a template",
                      f"quote the whole value: '{raw}'")
        return raw

    def _problem(self, p: Path, rule: str, message: str, hint: str = "") -> None:
        self.doc.flagged.add(p)
        self.doc.problems.append(make(self.doc.path, self.doc.pos(p), rule, message, hint))

    def _at(self, at: tuple[int, int], rule: str, message: str, hint: str = "") -> None:
        self.doc.problems.append(make(self.doc.path, at, rule, message, hint))


def _is_merge(knode: yaml.Node) -> bool:
    return knode.tag == _MERGE or (isinstance(knode, yaml.ScalarNode) and knode.value == "<<" and not knode.style)


def _plain_tag(value: str) -> str:
    for tag, regexp in _IMPLICIT.get(value[:1] if value else "", ()):
        if regexp.match(value):
            return str(tag)
    return "tag:yaml.org,2002:str"


def _scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == _PLAIN:
        tag = "tag:yaml.org,2002:str" if node.style else _plain_tag(node.value)
    if tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
        return node.value  # dates stay text: expressions and the schema both want the written form
    try:
        if tag == "tag:yaml.org,2002:int":
            return _constructor.construct_yaml_int(node)
        if tag == "tag:yaml.org,2002:float":
            return _constructor.construct_yaml_float(node)
        if tag == "tag:yaml.org,2002:bool":
            return _constructor.construct_yaml_bool(node)
        if tag == "tag:yaml.org,2002:null":
            return None
    except (ValueError, yaml.YAMLError):
        pass
    return node.value


def _looks_like_braces(node: yaml.MappingNode) -> bool:
    return bool(node.flow_style)


def _is_unquoted_template(node: yaml.MappingNode) -> bool:
    """``{{ x }}`` unquoted is a flow mapping whose only key is another flow mapping."""
    if not node.flow_style or len(node.value) != 1:
        return False
    key = node.value[0][0]
    return isinstance(key, yaml.MappingNode) and bool(key.flow_style)


def _offset_to_pos(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


def _syntax_problem(path: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    context = exc.context or ""
    if exc.context_mark and context in ("while parsing a flow sequence", "while parsing a flow mapping") \
            and exc.problem_mark:
        # an unclosed [ or {: point at the bracket, say where the parser gave up
        found = exc.problem_mark
        bracket = "[ list" if "sequence" in context else "{ mapping"
        what = f"this {bracket} is not closed properly: {exc.problem} at line {found.line + 1}"
        mark = exc.context_mark
    elif exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
        what += f" (started at line {exc.context_mark.line + 1})"
    at = (mark.line, mark.column) if mark else (0, 0)
    lines = text.splitlines()
    line_text = lines[at[0]] if at[0] < len(lines) else ""
    hint = ""
    if "\t" in line_text or "'\\t'" in what:
        hint = "YAML does not allow tabs for indentation; indent with spaces"
    elif "{{" in line_text:
        hint = "quote values that contain {{ }}: title: \"{{ account.name }} renews soon\""
        at = (at[0], line_text.index("{{"))  # the unquoted {{ is the mistake, not where the parser gave up
    elif "mapping values are not allowed" in what:
        hint = "quote the value when it contains ': ', e.g. title: \"Renewal: next steps\""
    elif "expected a single document" in what:
        hint = "keep one playbook per file; remove the extra '---'"
    return make(path, at, "yaml-syntax", what, hint)

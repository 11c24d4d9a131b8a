"""YAML read in one linear pass of libyaml's events: data, line of every key and item, repeated keys, and a
cap on what aliases may expand to (a "billion laughs" plan is refused before it grows)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

MAX_ALIASES = 100           # `*name` references in one plan
MAX_ALIAS_VALUES = 10_000   # values (scalars, lists, mappings) that aliases may add to the plan in total
MAX_DEPTH = 64              # lists and mappings inside each other (a plan needs 7; libyaml slows down with depth)
STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_FIRST_CHARS = frozenset(c for c in Resolver.yaml_implicit_resolvers if c is not None)
_NUMERIC_CHARS = frozenset("0123456789+-.<=")  # a number, a timestamp, `<<` or `=`: PyYAML's resolver decides
_TRUE, _FALSE = "yes Yes YES true True TRUE on On ON", "no No NO false False FALSE off Off OFF"
_WORDS: dict[str, bool | None] = {w: True for w in _TRUE.split()}
_WORDS |= {w: False for w in _FALSE.split()}
_WORDS |= {w: None for w in ("~", "null", "Null", "NULL")}   # YAML 1.1 booleans and nulls, as PyYAML reads them
_CONSTRUCTOR = SafeConstructor()
_SCALAR_TAGS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}


class YamlProblem(Exception):
    """The text is not a plan's YAML: message, fix and 1-based line."""

    def __init__(self, message: str, fix: str, line: int | None) -> None:
        super().__init__(message)
        self.message, self.fix, self.line = message, fix, line


@dataclass
class Lines:
    """Where each key of a mapping (or item of a list) is, and duplicate keys found on the way."""

    at: dict[int, Any] = field(default_factory=dict)          # id(container) -> {key: line} or [line, ...]
    repeated: list[tuple[list[Any], str, int, int]] = field(default_factory=list)  # path, key, first, again
    keep: list[Any] = field(default_factory=list)              # values replaced by a repeated key (ids kept)
    root: int = 1                                              # line of the document's first value


class _Frame:
    """An open list or mapping: its container, the line of each entry, and what is pending."""

    __slots__ = ("anchor", "at", "container", "is_map", "key", "key_line", "line", "lines", "merges", "parent", "size")

    def __init__(self, container: Any, parent: "_Frame | None", anchor: str | None, line: int) -> None:
        self.container, self.parent, self.anchor, self.line = container, parent, anchor, line
        self.is_map = isinstance(container, dict)
        self.lines: Any = {} if self.is_map else []
        self.size, self.key, self.key_line = 1, None, 0
        self.merges: list[Any] = []
        self.at: Any = None if parent is None else (parent.key if parent.is_map else len(parent.container))

    def path(self) -> list[Any]:
        """Keys and indexes from the document root to this container."""
        return [] if self.parent is None else self.parent.path() + [self.at]


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic collector: building millions of acyclic containers would trigger it again and again.
    Afterwards the new objects join the oldest generation unscanned (unless someone else froze objects)."""
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    gc.disable()
    try:
        yield
    finally:
        if enabled and not frozen:
            gc.freeze()      # what the collector would scan at its next run, all at once ...
        if enabled:
            gc.enable()
        if enabled and not frozen:
            gc.unfreeze()    # ... goes to the oldest generation instead, collected in its turn


def read_yaml(text: str) -> tuple[Any, Lines]:
    """The document's data and line index; raises YamlProblem for invalid YAML or too many aliases.
    Large plans read faster inside no_gc()."""
    builder = _Builder()
    loader = _Loader(text)
    try:
        handlers = builder.handlers
        for event in iter(loader.get_event, None):
            handlers[type(event)](event)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(*_syntax(exc)) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", "correct the YAML syntax", None) from exc
    finally:
        loader.dispose()
    return builder.result, builder.lines


def _syntax(exc: yaml.MarkedYAMLError) -> tuple[str, str, int | None]:
    """Message, fix and line of a YAML error: an unclosed bracket or quote is shown where it opens."""
    problem, context = exc.problem or "syntax error", exc.context or ""
    p_line = exc.problem_mark.line + 1 if exc.problem_mark else None
    c_line = exc.context_mark.line + 1 if exc.context_mark else None
    opened = c_line is not None and context.startswith(("while parsing a flow sequence", "while parsing a flow mapping",
                                                             "while scanning a quoted"))
    if opened:
        what = "the quote" if "quoted" in context else ("the `[`" if "sequence" in context else "the `{`")
        return (f"invalid YAML: {what} opened on line {c_line} is not closed ({problem}, line {p_line})",
                f"close {what} on line {c_line}", c_line)
    return f"invalid YAML: {problem}", "correct the YAML syntax at that line", p_line


class _Builder:
    """Turns parser events into Python data, keeping lines; aliases share the anchored value."""

    def __init__(self) -> None:
        self.top: _Frame | None = None
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.lines = Lines()
        self.result: Any = None
        self.aliases = self.alias_values = self.documents = self.depth = 0
        self.handlers = {ScalarEvent: self._scalar, MappingStartEvent: self._open, SequenceStartEvent: self._open,
                         MappingEndEvent: self._close, SequenceEndEvent: self._close, AliasEvent: self._alias,
                         DocumentStartEvent: self._document, DocumentEndEvent: _ignore, StreamStartEvent: _ignore,
                         StreamEndEvent: _ignore}

    def _document(self, event: Event) -> None:
        self.documents += 1
        if self.documents > 1:
            raise YamlProblem("the file holds more than one YAML document (`---`)", "keep one plan per file",
                              event.start_mark.line + 1)

    def _scalar(self, event: ScalarEvent) -> None:
        tag, value = event.tag, event.value
        if tag is not None or value == "" or (event.implicit[0] and value[0] in _FIRST_CHARS):
            value = _scalar(event)
        top = self.top
        if top is None or event.anchor:
            self._value(value, 1, event.anchor, event.start_mark.line + 1)
            return
        top.size += 1     # the common case of _value(), inline: most events are scalars
        if not top.is_map:
            top.container.append(value)
            top.lines.append(event.start_mark.line + 1)
        elif top.key_line == 0:
            top.key, top.key_line = value, event.start_mark.line + 1
        else:
            self._item(top, value)

    def _open(self, event: Any) -> None:
        tag, line = event.tag, event.start_mark.line + 1
        mapping = type(event) is MappingStartEvent
        if tag not in (None, "!", "tag:yaml.org,2002:map" if mapping else "tag:yaml.org,2002:seq"):
            raise YamlProblem(f"the YAML tag `{tag}` is not allowed in a plan", "remove the tag", line)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise YamlProblem(f"lists and mappings are nested more than {MAX_DEPTH} deep", "flatten the plan", line)
        self.top = _Frame({} if mapping else [], self.top, event.anchor, line)
        self.lines.at[id(self.top.container)] = self.top.lines

    def _close(self, event: Event) -> None:
        frame = self.top
        assert frame is not None
        self.top, self.depth = frame.parent, self.depth - 1
        if frame.merges:
            _merge(frame, self.lines)
        self._value(frame.container, frame.size, frame.anchor, frame.line)

    def _alias(self, event: AliasEvent) -> None:
        line, anchor = event.start_mark.line + 1, str(event.anchor)
        if anchor not in self.anchors:
            raise YamlProblem(f"the alias `*{anchor}` has no complete anchor `&{anchor}` before it",
                              "define the anchor before the alias, and never inside the value it names", line)
        value, size = self.anchors[anchor]
        self.aliases += 1
        self.alias_values += size
        if self.aliases > MAX_ALIASES:
            raise YamlProblem(f"the plan uses more than {MAX_ALIASES} YAML aliases (`*name`), the limit",
                              "write the repeated parts out, or use fewer aliases", line)
        if self.alias_values > MAX_ALIAS_VALUES:
            raise YamlProblem(f"YAML aliases expand the plan by more than {MAX_ALIAS_VALUES} values, the limit",
                              "write the repeated parts out, or alias smaller parts", line)
        self._value(value, size, None, line)

    def _value(self, value: Any, size: int, anchor: str | None, line: int) -> None:
        """Place a finished value: the document, a list item, a mapping key or a mapping value."""
        if anchor:
            self.anchors[anchor] = (value, size)
        top = self.top
        if top is None:
            self.result, self.lines.root = value, line
            return
        top.size += size
        if not top.is_map:
            top.container.append(value)
            top.lines.append(line)
        elif top.key_line == 0:
            if isinstance(value, (dict, list)):
                raise YamlProblem("a mapping key is a list or a mapping", "use a plain name as the key", line)
            top.key, top.key_line = value, line
        else:
            self._item(top, value)

    def _item(self, frame: _Frame, value: Any) -> None:
        key, line = frame.key, frame.key_line
        frame.key, frame.key_line = None, 0
        if key == "<<":
            frame.merges.append(value)
        elif key in frame.container:
            self.lines.repeated.append((frame.path(), str(key), frame.lines[key], line))
            self.lines.keep.append(frame.container[key])  # no longer in the data: its id must stay its own
            frame.container[key] = value
        else:
            frame.container[key] = value
            frame.lines[key] = line


def _ignore(event: Event) -> None:
    """Stream and document boundaries carry nothing a plan needs."""


def _scalar(event: ScalarEvent) -> Any:
    value, tag = event.value, event.tag
    plain = event.implicit[0]
    if tag is None or tag == "!":
        if not plain or tag == "!" or (value and value[0] not in _FIRST_CHARS):
            return value
        if value and value[0] not in _NUMERIC_CHARS:
            return _WORDS.get(value, value)
        tag = _RESOLVER.resolve(ScalarNode, value, (True, False))
    if tag == STR:
        return value
    if tag == MERGE:
        return "<<"
    if tag not in _SCALAR_TAGS:
        raise YamlProblem(f"the YAML tag `{tag}` is not allowed in a plan", "remove the tag",
                          event.start_mark.line + 1)
    node = ScalarNode(tag, value, event.start_mark, event.end_mark)
    return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)


def _merge(frame: _Frame, lines: Lines) -> None:
    """`<<: *base` (or a list of them): keys of the merged mappings that the mapping does not set itself."""
    sources = [m for value in frame.merges for m in (value if isinstance(value, list) else [value])]
    for source in sources:
        if not isinstance(source, dict):
            raise YamlProblem("`<<` merges mappings only", "merge a mapping alias such as `<<: *defaults`",
                              frame.line)
        for key, value in source.items():
            if key not in frame.container:
                frame.container[key] = value
                frame.lines[key] = lines.at.get(id(source), {}).get(key, 1)

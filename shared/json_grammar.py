"""JSON Schema to a llama.cpp grammar (GBNF): answers that parse, and match their schema, by construction.

The gateway compiles a request's schema to refuse what cannot be enforced before anything is
queued; the worker compiles the same text again into the sampler of that one answer. Only what a
grammar can guarantee is accepted: a keyword that would constrain the answer but cannot be
expressed here (`pattern`, `format`, `minimum`, ...) is refused with its name, never ignored,
so an answer never claims a schema it does not meet.

Everything the grammar allows is valid JSON for the schema; it allows less than the schema does in
two ways that matter to no client: properties come in the order the schema lists them, and an
object with listed properties gets no others.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A schema larger than this is refused: its grammar would take longer to build than the answer.
MAX_SCHEMA_CHARS = 16_000
# Bounds on `minItems`/`maxItems`/`minLength`/`maxLength`: llama.cpp expands a repetition into one
# rule per repeat, and an answer that long is not what a token limit would let through anyway.
MAX_REPEAT = 1000
_MAX_RULES = 2000

# Words that describe a schema without constraining its instances.
_ANNOTATIONS = frozenset(
    [
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$id",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
    ]
)
_UNDERSTOOD = frozenset(
    [
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "$defs",
        "definitions",
        "minLength",
        "maxLength",
    ]
)
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")

# Whitespace between tokens, bounded: a small model must not be able to spin on blanks forever.
_BASE_RULES = {
    "ws": "[ \\t\\n]{0,20}",
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\""',
    "integer": '"-"? ("0" | [1-9] [0-9]{0,15})',
    "number": 'integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)* ws)? "}"',
    "array": '"[" ws (value (ws "," ws value)* ws)? "]"',
}


class SchemaUnsupported(ValueError):
    """The schema asks for something a grammar here cannot enforce; the message says what."""


def literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_literal(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _repeat(item: str, low: int, high: int | None) -> str:
    if low == 0 and high is None:
        return f"({item})*"
    if high is None:
        return f"({item}){{{low},}}"
    return f"({item}){{{low},{high}}}"


def _bound(schema: dict[str, Any], key: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPEAT:
        raise SchemaUnsupported(f"{key} must be a whole number from 0 to {MAX_REPEAT}")
    return value


class _Compiler:
    def __init__(self, root: dict[str, Any], prefix: str = "") -> None:
        self.root = root
        self.prefix = prefix
        self.rules: dict[str, str] = {}
        self.refs: dict[str, str] = {}

    def add(self, hint: str, body: str) -> str:
        if len(self.rules) >= _MAX_RULES:
            raise SchemaUnsupported("the schema is too large")
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "rule"
        name = f"{self.prefix}{base}-{len(self.rules)}"
        self.rules[name] = body
        return name

    def visit(self, schema: Any, hint: str) -> str:
        """A GBNF expression for the instances of `schema`."""
        if schema is True or schema == {}:
            return "value"
        if not isinstance(schema, dict):
            raise SchemaUnsupported(f"{hint}: a schema must be an object")
        unknown = sorted(set(schema) - _UNDERSTOOD - _ANNOTATIONS)
        if unknown:
            raise SchemaUnsupported(f"{hint}: {', '.join(unknown)} cannot be enforced by this server")
        if "$ref" in schema:
            if set(schema) - _ANNOTATIONS - {"$ref", "$defs", "definitions"}:
                raise SchemaUnsupported(f"{hint}: other keywords beside $ref are not supported")
            return self.ref(schema["$ref"])
        if "const" in schema:
            return _json_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaUnsupported(f"{hint}: enum must be a list of values")
            return "(" + " | ".join(_json_literal(v) for v in values) + ")"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = schema[key]
                if not isinstance(options, list) or not options:
                    raise SchemaUnsupported(f"{hint}: {key} must be a list of schemas")
                return "(" + " | ".join(self.visit(o, f"{hint}-{n}") for n, o in enumerate(options)) + ")"
        if "allOf" in schema:
            parts = schema["allOf"]
            if not isinstance(parts, list) or len(parts) != 1:
                raise SchemaUnsupported(f"{hint}: allOf is supported with one schema only")
            return self.visit(parts[0], hint)
        kind = schema.get("type")
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                return "value"
        if isinstance(kind, list):
            if not kind:
                raise SchemaUnsupported(f"{hint}: type must not be an empty list")
            return "(" + " | ".join(self.visit({**schema, "type": k}, hint) for k in kind) + ")"
        if kind not in _TYPES:
            raise SchemaUnsupported(f"{hint}: unknown type {kind!r}")
        if kind == "object":
            return self.object(schema, hint)
        if kind == "array":
            return self.array(schema, hint)
        if kind == "string":
            low, high = _bound(schema, "minLength") or 0, _bound(schema, "maxLength")
            if low == 0 and high is None:
                return "string"
            if high is not None and high < low:
                raise SchemaUnsupported(f"{hint}: maxLength is below minLength")
            return f'"\\"" {_repeat("char", low, high)} "\\""'
        return str(kind)

    def ref(self, ref: Any) -> str:
        if ref in self.refs:
            return self.refs[ref]
        match = re.fullmatch(r"#/(\$defs|definitions)/([^/]+)", ref) if isinstance(ref, str) else None
        target = (self.root.get(match.group(1)) or {}).get(match.group(2)) if match else None
        if match is None or target is None:
            raise SchemaUnsupported(f"$ref {ref!r} does not name a definition in this schema")
        # Named before it is visited, so that a schema referring to itself becomes a recursive rule.
        name = self.add(match.group(2), "")
        self.refs[ref] = name
        self.rules[name] = self.visit(target, match.group(2))
        return name

    def object(self, schema: dict[str, Any], hint: str) -> str:
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise SchemaUnsupported(f"{hint}: properties must be an object and required a list")
        missing = [name for name in required if name not in properties]
        if missing:
            names = ", ".join(map(str, missing))
            raise SchemaUnsupported(f"{hint}: required names unknown properties: {names}")
        extra = schema.get("additionalProperties", True)
        if not properties:
            if extra is False:
                return '"{" ws "}"'
            if extra is True or extra == {}:
                return "object"
            value = self.visit(extra, f"{hint}-value")
            pair = f'string ws ":" ws {value}'
            return self.add(hint, f'"{{" ws ({pair} (ws "," ws {pair})* ws)? "}}"')
        pairs = [
            f'{_json_literal(name)} ws ":" ws {self.visit(sub, f"{hint}-{name}")}'
            for name, sub in properties.items()
        ]
        flags = [name in required for name in properties]
        # after[i]: properties i.. once one was written (each needs a comma); fresh[i]: none yet,
        # wanted only where every property before i may be left out.
        wanted = [True]
        for flag in flags:
            wanted.append(wanted[-1] and not flag)
        after: list[str] = [""] * (len(pairs) + 1)
        fresh: list[str] = [""] * (len(pairs) + 1)
        for i in range(len(pairs) - 1, -1, -1):
            rest = f" {after[i + 1]}" if after[i + 1] else ""
            optional = "" if flags[i] else "?"
            if i > 0:
                after[i] = self.add(f"{hint}-after", f'(ws "," ws {pairs[i]}){optional}{rest}')
            if wanted[i]:
                body = f"{pairs[i]}{rest}"
                if not flags[i]:
                    body = f"{body} | {fresh[i + 1]}" if fresh[i + 1] else f"({body})?"
                fresh[i] = self.add(f"{hint}-from", body)
        return self.add(hint, f'"{{" ws {fresh[0]} ws "}}"')

    def array(self, schema: dict[str, Any], hint: str) -> str:
        item = self.visit(schema.get("items", True), f"{hint}-item")
        low, high = _bound(schema, "minItems") or 0, _bound(schema, "maxItems")
        if high is not None and high < low:
            raise SchemaUnsupported(f"{hint}: maxItems is below minItems")
        if high == 0:
            return '"[" ws "]"'
        more = _repeat(f'ws "," ws {item}', max(low - 1, 0), None if high is None else high - 1)
        body = f"{item} {more}"
        if low == 0:
            body = f"({body})?"
        return self.add(hint, f'"[" ws {body} ws "]"')


def grammar_of(root: str, *rule_sets: dict[str, str]) -> str:
    """A whole grammar: `root`'s expression, the given rules and the base ones (ws, string, ...)."""
    # The base rules come whole: llama.cpp lets rules nobody refers to be.
    lines = [f"root ::= {root}"]
    for rules in (*rule_sets, _BASE_RULES):
        lines += [f"{name} ::= {body}" for name, body in rules.items()]
    return "\n".join(lines) + "\n"


def schema_rules(schema: Any, prefix: str = "") -> tuple[str, dict[str, str]]:
    """An expression for `schema`'s instances and the rules it needs, named from `prefix`, so that
    the rules of several schemas can share one grammar (raises SchemaUnsupported)."""
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise SchemaUnsupported(f"the schema is longer than {MAX_SCHEMA_CHARS} characters")
    compiler = _Compiler(schema if isinstance(schema, dict) else {}, prefix)
    return compiler.visit(schema, "root"), compiler.rules


def schema_grammar(schema: Any) -> str:
    """The GBNF grammar of `schema`'s instances (raises SchemaUnsupported)."""
    root, rules = schema_rules(schema)
    return grammar_of(root, rules)


def response_format_grammar(response_format: dict[str, Any]) -> str | None:
    """The grammar an OpenAI `response_format` asks for: None for plain text, any JSON object for
    `json_object`, the schema's instances for `json_schema` (its shape is checked at the gateway)."""
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return schema_grammar({"type": "object"})
    if kind == "json_schema":
        return schema_grammar(response_format["json_schema"]["schema"])
    raise SchemaUnsupported(f"unknown response_format type {kind!r}")

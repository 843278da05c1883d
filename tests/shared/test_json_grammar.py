"""JSON Schema to grammar: what the grammar lets through is exactly JSON the schema accepts.

Each text is fed, token by token of the bundled small model's vocabulary, through llama.cpp's own
grammar sampler, which is what holds an answer to its schema in the worker.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, ConfigDict, Field

from shared.json_grammar import SchemaUnsupported, literal, response_format_grammar, schema_grammar
from tests.conftest import TINY_MODEL
from tests.grammar_helpers import grammar_accepts as _accepts
from worker.llama_native import NativeModel


@pytest.fixture(scope="module")
def model() -> Iterator[NativeModel]:
    native = NativeModel(TINY_MODEL)
    yield native
    native.close()


class Unit(enum.StrEnum):
    GRAM = "g"
    PIECE = "шт"


class Ingredient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=12)
    amount: float
    unit: Unit


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    servings: int
    vegetarian: bool
    ingredients: list[Ingredient] = Field(min_length=1, max_length=3)
    note: str | None


RECIPE = to_strict_json_schema(Recipe)  # as the `openai` client's parse() sends it
GOOD: dict[str, Any] = {
    "title": "Борщ",
    "servings": 4,
    "vegetarian": False,
    "ingredients": [{"name": "свёкла", "amount": 2.5, "unit": "шт"}],
    "note": None,
}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD, ensure_ascii=False),
        json.dumps(GOOD, ensure_ascii=False, indent=2),
        # Escapes in free text (an enum's values are written one way: as the schema spells them).
        json.dumps(
            {**GOOD, "note": 'with "quotes" \\ and \u00e9', "servings": -1}, ensure_ascii=False
        ).replace("Борщ", "\\u0411орщ"),
        json.dumps({**GOOD, "ingredients": GOOD["ingredients"] * 3}, ensure_ascii=False),
    ],
)
def test_instances_of_the_schema_are_let_through(model: NativeModel, text: str) -> None:
    assert _accepts(model, schema_grammar(RECIPE), text)
    Recipe.model_validate_json(text)  # and they are instances indeed


@pytest.mark.parametrize(
    "change",
    [
        {"unit_of_first": "kg"},  # not in the enum
        {"servings": 4.5},  # not an integer
        {"vegetarian": "maybe"},
        {"ingredients": []},  # minItems 1
        {"ingredients": GOOD["ingredients"] * 4},  # maxItems 3
        {"name_of_first": "x" * 13},  # maxLength 12
        {"drop": "note"},  # required
        {"extra": 1},  # additionalProperties false
    ],
)
def test_what_the_schema_refuses_cannot_be_written(model: NativeModel, change: dict[str, Any]) -> None:
    value = json.loads(json.dumps(GOOD))
    for key, new in change.items():
        if key == "unit_of_first":
            value["ingredients"][0]["unit"] = new
        elif key == "name_of_first":
            value["ingredients"][0]["name"] = new
        elif key == "drop":
            del value[new]
        else:
            value[key] = new
    text = json.dumps(value, ensure_ascii=False)
    assert not _accepts(model, schema_grammar(RECIPE), text)
    with pytest.raises(ValueError):
        Recipe.model_validate_json(text)


def test_an_unfinished_answer_cannot_end(model: NativeModel) -> None:
    text = json.dumps(GOOD, ensure_ascii=False)
    assert not _accepts(model, schema_grammar(RECIPE), text[:-1])
    assert not _accepts(model, schema_grammar(RECIPE), "Here is the JSON: " + text)


def test_optional_properties_may_be_left_out_in_any_combination(model: NativeModel) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
        "required": ["b"],
    }
    grammar = schema_grammar(schema)
    for text in (
        '{"b": "x"}',
        '{"a": 1, "b": "x"}',
        '{"b": "x", "c": true}',
        '{"a": 1, "b": "x", "c": false}',
    ):
        assert _accepts(model, grammar, text), text
    for text in ("{}", '{"a": 1}', '{"a": 1, "c": true}', '{, "b": "x"}', '{"b": "x",}'):
        assert not _accepts(model, grammar, text), text
    nothing_required = schema_grammar({**schema, "required": []})
    for text in ("{}", '{"c": true}', '{"a": 1, "c": true}'):
        assert _accepts(model, nothing_required, text), text


def test_recursive_definitions_and_json_object_mode(model: NativeModel) -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    }
    grammar = schema_grammar(tree)
    assert _accepts(model, grammar, '{"name": "a", "children": [{"name": "b", "children": []}]}')
    assert not _accepts(model, grammar, '{"name": "a", "children": [{"name": "b"}]}')
    any_object = response_format_grammar({"type": "json_object"})
    assert any_object is not None
    assert _accepts(model, any_object, '{"x": [1, {"y": null}], "z": "w"}')
    assert not _accepts(model, any_object, "[1, 2]")
    assert response_format_grammar({"type": "text"}) is None


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "string", "pattern": "^a+$"}, "pattern"),
        ({"type": "string", "format": "date-time"}, "format"),
        ({"type": "integer", "minimum": 0}, "minimum"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "b"),
        ({"$ref": "#/$defs/missing"}, "missing"),
        ({"type": "array", "maxItems": 10**6}, "maxItems"),
        ({"type": "color"}, "color"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "allOf"),
        ({"enum": []}, "enum"),
    ],
)
def test_what_a_grammar_cannot_enforce_is_refused_by_name(schema: dict[str, Any], named: str) -> None:
    with pytest.raises(SchemaUnsupported, match=named):
        schema_grammar(schema)


def test_a_huge_schema_is_refused() -> None:
    schema = {"type": "object", "properties": {f"p{n}": {"type": "string"} for n in range(2000)}}
    with pytest.raises(SchemaUnsupported, match="longer than"):
        schema_grammar(schema)


def test_literals_escape_what_the_grammar_would_read_as_syntax(model: NativeModel) -> None:
    tricky = 'a "b" \\ c\nd\t\x01 е'
    grammar = f"root ::= {literal(tricky)}\n"
    assert _accepts(model, grammar, tricky)
    assert not _accepts(model, grammar, tricky[:-1])

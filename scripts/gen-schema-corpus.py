#!/usr/bin/env python3
"""Writes tests/e2e/schemas.json: the JSON schemas the structured-output tests run through
both APIs (tests/e2e/test_structured.py), each of whose answers must validate.

The corpus is built from fixed parts, without randomness, so it only changes when this
script does. Every string is bounded (maxLength, an enum or a bounded pattern), every
number has bounds (and a multipleOf, since a fraction could go on), every object is closed and every array has a maxItems, and
recursion is unrolled to a fixed depth: a schema that lets a small model go on
forever would test the token budget, not the constraint.

Usage: scripts/gen-schema-corpus.py  (from the repository root)
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "e2e" / "schemas.json"


def s(max_length=16, **kw):
    return {"type": "string", "maxLength": max_length, **kw}


def i(lo, hi, **kw):
    return {"type": "integer", "minimum": lo, "maximum": hi, **kw}


def n(lo, hi, **kw):
    # A fraction may go on forever within any bounds; a multiple of a power of two has few
    # digits and divides exactly in binary floating point, as the validator computes it.
    return {"type": "number", "minimum": lo, "maximum": hi, "multipleOf": 0.25, **kw}


BOOL = {"type": "boolean"}


def obj(props, required=None, closed=True):
    o = {"type": "object", "properties": props, "required": list(props) if required is None else required}
    if closed:
        o["additionalProperties"] = False
    return o


def arr(items, lo=0, hi=3):
    return {"type": "array", "items": items, "minItems": lo, "maxItems": hi}


FIELDS = {
    "name": s(20),
    "age": i(0, 120),
    "city": s(24),
    "score": n(0, 100),
    "active": BOOL,
    "count": i(1, 50),
    "title": s(30),
    "year": i(1900, 2030),
    "price": n(0, 1000),
    "verified": BOOL,
    "country": s(20),
    "rating": i(1, 5),
}


def flat():
    keys = list(FIELDS)
    out = []
    for size in (1, 2, 3, 4, 5, 6):
        for start in range(0, 12, 3 if size < 4 else 4):
            ks = [keys[(start + k) % len(keys)] for k in range(size)]
            out.append((f"flat-{size}-{start}", obj({k: FIELDS[k] for k in ks})))
    return out


def enums():
    colours = ["red", "green", "blue", "yellow"]
    sizes = ["small", "medium", "large"]
    out = [
        ("enum-colour", obj({"colour": {"enum": colours}})),
        ("enum-size-and-qty", obj({"size": {"enum": sizes}, "quantity": i(1, 10)})),
        ("enum-status", obj({"status": {"type": "string", "enum": ["todo", "doing", "done"]}, "title": s(20)})),
        ("enum-integers", obj({"level": {"enum": [1, 2, 3, 5, 8]}})),
        ("enum-mixed", obj({"answer": {"enum": ["yes", "no", 0, 1, True, None]}})),
        ("enum-root", {"enum": ["north", "south", "east", "west"]}),
        ("const-version", obj({"version": {"const": "1.0"}, "name": s(12)})),
        ("const-number", obj({"kind": {"const": 42}, "ok": BOOL})),
        ("enum-two-fields", obj({"from": {"enum": ["EUR", "USD", "GBP"]}, "to": {"enum": ["EUR", "USD", "GBP"]}})),
        ("enum-day", obj({"day": {"enum": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}, "hour": i(0, 23)})),
        ("enum-array", obj({"tags": arr({"enum": ["a", "b", "c"]}, 1, 3)})),
        ("enum-nullable", obj({"priority": {"enum": ["low", "high", None]}})),
        ("enum-long-names", obj({"planet": {"enum": ["Mercury", "Venus", "Earth", "Mars", "Jupiter"]}})),
        ("enum-with-number", obj({"grade": {"enum": ["A", "B", "C"]}, "points": n(0, 10)})),
        ("enum-boolean-like", obj({"choice": {"enum": ["true", "false"]}, "sure": BOOL})),
    ]
    return out


def arrays():
    return [
        ("array-of-strings", obj({"items": arr(s(12), 1, 3)})),
        ("array-of-integers", obj({"values": arr(i(0, 99), 1, 4)})),
        ("array-of-numbers", obj({"readings": arr(n(-50, 50), 0, 3)})),
        ("array-of-booleans", obj({"flags": arr(BOOL, 2, 3)})),
        ("array-of-objects", obj({"people": arr(obj({"name": s(12), "age": i(0, 99)}), 1, 2)})),
        ("array-root-integers", arr(i(0, 9), 1, 3)),
        ("array-root-strings", arr(s(10), 1, 2)),
        ("array-root-objects", arr(obj({"id": i(1, 100), "ok": BOOL}), 1, 2)),
        ("array-exact-two", obj({"pair": arr(i(0, 10), 2, 2)})),
        ("array-nested", obj({"grid": arr(arr(i(0, 9), 1, 2), 1, 2)})),
        ("array-with-title", obj({"title": s(20), "tags": arr(s(8), 0, 3)})),
        ("array-of-enums", obj({"days": arr({"enum": ["Mon", "Wed", "Fri"]}, 1, 3)})),
        ("array-two-lists", obj({"odd": arr(i(1, 9), 1, 2), "even": arr(i(0, 8), 1, 2)})),
        ("array-prefix-items", obj({"point": {"type": "array", "prefixItems": [n(-90, 90), n(-180, 180)],
                                              "items": False, "minItems": 2}})),
        ("array-unique-free", obj({"codes": arr(s(4), 1, 3), "total": i(0, 10)})),
    ]


def nested():
    address = obj({"street": s(24), "city": s(16), "zip": {"type": "string", "pattern": "^[0-9]{5}$"}})
    out = [
        ("nested-address", obj({"name": s(16), "address": address})),
        ("nested-two-levels", obj({"company": obj({"name": s(16), "ceo": obj({"name": s(16), "age": i(20, 90)})})})),
        ("nested-point", obj({"from": obj({"x": i(-10, 10), "y": i(-10, 10)}), "to": obj({"x": i(-10, 10), "y": i(-10, 10)})})),
        ("nested-book", obj({"book": obj({"title": s(24), "year": i(1450, 2030)}), "author": obj({"name": s(20)})})),
        ("nested-order", obj({"id": i(1, 9999), "customer": obj({"name": s(16), "vip": BOOL}),
                              "lines": arr(obj({"sku": s(8), "qty": i(1, 9)}), 1, 2)})),
        ("nested-config", obj({"server": obj({"host": s(16), "port": i(1, 65535)}), "debug": BOOL})),
        ("nested-weather", obj({"city": s(16), "today": obj({"high": n(-40, 50), "low": n(-40, 50)})})),
        ("nested-three-levels", obj({"a": obj({"b": obj({"c": i(0, 9)})})})),
        ("nested-movie", obj({"movie": obj({"title": s(24), "rating": n(0, 10)}), "seen": BOOL})),
        ("nested-team", obj({"team": obj({"name": s(16), "members": arr(s(12), 1, 3)})})),
        ("nested-recipe", obj({"dish": s(20), "ingredients": arr(obj({"item": s(12), "grams": i(1, 1000)}), 1, 3)})),
        ("nested-optional-inner", obj({"meta": obj({"source": s(12), "note": s(12)}, ["source"])})),
        ("nested-product", obj({"product": obj({"name": s(16), "price": obj({"amount": n(0, 500), "currency": {"enum": ["EUR", "USD"]}})})})),
        ("nested-event", obj({"event": s(20), "when": obj({"year": i(2000, 2030), "month": i(1, 12), "day": i(1, 28)})})),
        ("nested-student", obj({"student": obj({"name": s(16), "grades": arr(i(1, 6), 1, 3)})})),
    ]
    return out


def optional():
    out = []
    keys = list(FIELDS)
    for k in range(12):
        a, b, c = keys[k], keys[(k + 4) % 12], keys[(k + 7) % 12]
        props = {a: FIELDS[a], b: FIELDS[b], c: FIELDS[c]}
        required = [[a], [a, b], []][k % 3]
        out.append((f"optional-{k}", obj(props, required)))
    out += [
        ("optional-nested", obj({"name": s(16), "nickname": s(12), "address": obj({"city": s(16)})}, ["name"])),
        ("optional-array", obj({"id": i(1, 99), "aliases": arr(s(10), 0, 2)}, ["id"])),
        ("optional-all", obj({"x": i(0, 9), "y": i(0, 9)}, [])),
    ]
    return out


def refs():
    def with_defs(defs, schema):
        return {**schema, "$defs": defs}

    person = obj({"name": s(16), "age": i(0, 120)})
    address = obj({"city": s(16), "country": s(16)})
    colour = {"enum": ["red", "green", "blue"]}
    r = lambda name: {"$ref": f"#/$defs/{name}"}  # noqa: E731
    return [
        ("ref-person", with_defs({"Person": person}, obj({"owner": r("Person")}))),
        ("ref-twice", with_defs({"Person": person}, obj({"buyer": r("Person"), "seller": r("Person")}))),
        ("ref-array", with_defs({"Person": person}, obj({"people": arr(r("Person"), 1, 2)}))),
        ("ref-enum", with_defs({"Colour": colour}, obj({"background": r("Colour"), "text": r("Colour")}))),
        ("ref-nested-defs", with_defs({"Address": address, "Person": obj({"name": s(16), "home": r("Address")})},
                                      obj({"person": r("Person")}))),
        ("ref-root", with_defs({"Point": obj({"x": i(0, 9), "y": i(0, 9)})}, r("Point"))),
        ("ref-optional", with_defs({"Address": address}, obj({"name": s(16), "address": r("Address")}, ["name"]))),
        ("ref-integer", with_defs({"Percent": i(0, 100)}, obj({"done": r("Percent"), "left": r("Percent")}))),
        ("ref-string-pattern", with_defs({"Code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
                                         obj({"from": r("Code"), "to": r("Code")}))),
        ("ref-definitions-draft7", {"definitions": {"Item": obj({"sku": s(8), "qty": i(1, 9)})},
                                    **obj({"item": {"$ref": "#/definitions/Item"}})}),
        ("ref-chain", with_defs({"A": obj({"b": r("B")}), "B": obj({"c": r("C")}), "C": i(0, 9)}, r("A"))),
        ("ref-tree-two-levels", with_defs({"Leaf": obj({"value": i(0, 9)}),
                                          "Node": obj({"value": i(0, 9), "children": arr(r("Leaf"), 0, 2)}, ["value"])},
                                         r("Node"))),
        ("ref-pydantic-style", with_defs({"Pet": {"title": "Pet", "type": "object",
                                                  "properties": {"kind": {"title": "Kind", "enum": ["cat", "dog"]},
                                                                 "name": {"title": "Name", **s(12)}},
                                                  "required": ["kind", "name"], "additionalProperties": False}},
                                         {"title": "Owner", "type": "object",
                                          "properties": {"name": {"title": "Name", **s(16)},
                                                         "pets": {"title": "Pets", **arr(r("Pet"), 1, 2)}},
                                          "required": ["name", "pets"], "additionalProperties": False})),
        ("ref-in-anyof", with_defs({"Cat": obj({"meows": BOOL}), "Dog": obj({"barks": BOOL})},
                                   obj({"pet": {"anyOf": [r("Cat"), r("Dog")]}}))),
        ("ref-array-of-enum", with_defs({"Day": {"enum": ["Sat", "Sun"]}}, obj({"weekend": arr(r("Day"), 1, 2)}))),
    ]


def numbers():
    return [
        ("number-negative-range", obj({"temperature": n(-30, -1)})),
        ("number-exclusive", obj({"ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                                             "multipleOf": 0.125}})),
        ("integer-exclusive", obj({"n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}})),
        ("integer-large-range", obj({"population": i(1000, 10000000)})),
        ("integer-negative", obj({"depth": i(-11000, 0)})),
        ("number-latlon", obj({"lat": n(-90, 90), "lon": n(-180, 180)})),
        ("integer-single-value", obj({"answer": i(42, 42)})),
        ("number-small", obj({"probability": n(0, 1)})),
        ("integer-percent-pair", obj({"min": i(0, 50), "max": i(50, 100)})),
        ("number-and-integer", obj({"weight": n(0.5, 200), "items": i(1, 20)})),
        ("number-root", n(0, 10)),
        ("number-multiple-of-half", obj({"hours": n(0, 24, multipleOf=0.5)})),
        ("integer-root", i(1, 100)),
    ]


def patterns():
    p = lambda rx, **kw: {"type": "string", "pattern": rx, **kw}  # noqa: E731
    return [
        ("pattern-date", obj({"date": p("^[0-9]{4}-[0-9]{2}-[0-9]{2}$")})),
        ("pattern-time", obj({"time": p("^([01][0-9]|2[0-3]):[0-5][0-9]$")})),
        ("pattern-hex-colour", obj({"colour": p("^#[0-9a-f]{6}$")})),
        ("pattern-upper-code", obj({"airport": p("^[A-Z]{3}$"), "gate": p("^[A-Z][0-9]{1,2}$")})),
        ("pattern-email", obj({"email": p("^[a-z]{1,12}@[a-z]{1,10}\\.(com|org)$")})),
        ("pattern-phone", obj({"phone": p("^\\+[0-9]{2} [0-9]{3} [0-9]{4}$")})),
        ("pattern-version", obj({"version": p("^[0-9]\\.[0-9]{1,2}\\.[0-9]{1,2}$")})),
        ("pattern-word", obj({"word": p("^[a-z]{2,10}$")})),
        ("pattern-id", obj({"id": p("^user-[0-9]{1,6}$"), "name": s(16)})),
        ("pattern-with-length", obj({"slug": p("^[a-z0-9-]+$", minLength=3, maxLength=20)})),
        ("pattern-uuid-like", obj({"key": p("^[0-9a-f]{8}-[0-9a-f]{4}$")})),
        ("pattern-iso-country", obj({"countries": arr(p("^[A-Z]{2}$"), 1, 3)})),
        ("string-min-length", obj({"motto": s(30, minLength=5)})),
    ]


def unions():
    return [
        ("nullable-string", obj({"middle_name": {"type": ["string", "null"], "maxLength": 12}, "name": s(16)})),
        ("nullable-integer", obj({"age": {"anyOf": [i(0, 120), {"type": "null"}]}})),
        ("anyof-string-or-integer", obj({"id": {"anyOf": [s(8), i(0, 999)]}})),
        ("oneof-shapes", obj({"shape": {"oneOf": [obj({"kind": {"const": "circle"}, "r": i(1, 9)}),
                                                  obj({"kind": {"const": "square"}, "side": i(1, 9)})]}})),
        ("boolean-only", obj({"ok": BOOL})),
        ("empty-object", {"type": "object", "properties": {}, "additionalProperties": False}),
        ("allof-merge", {"allOf": [{"type": "object", "required": ["a"]}, obj({"a": i(0, 9), "b": BOOL})]}),
        ("description-heavy", obj({"summary": {"type": "string", "description": "a one-line summary", "maxLength": 40},
                                   "words": {"type": "integer", "description": "how many words", **i(1, 40)}})),
    ]


def main():
    corpus = flat() + enums() + arrays() + nested() + optional() + refs() + numbers() + patterns() + unions()
    names = [name for name, _ in corpus]
    assert len(names) == len(set(names)), "schema names must be unique"
    assert len(corpus) >= 100, len(corpus)
    OUT.write_text(json.dumps([{"name": name, "schema": schema} for name, schema in corpus], indent=1) + "\n")
    print(f"{len(corpus)} schemas written to {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main()

"""The YAML fidelity table: card-file forms and what fairseq2 0.8.1 reads from each.

fairseq2 reads card files with ruamel's safe loader, ``YAML(typ="safe", pure=True)``, YAML
1.2 core schema. Each case below was written from the YAML 1.2 spec (chapter 10.3, the core
schema; 1.1's type repository for ``%YAML 1.1`` cases). ``python tests/data/yaml_fidelity.py``
checks the cases against ruamel and writes ``yaml_fidelity.json``: the committed expected
value and type of every document. It needs ruamel.yaml, which is not a dependency of
asyncassets: run it in a scratch venv (``pip install 'ruamel.yaml==0.18.*'``, the version
fairseq2 0.8.1 pins). tests/test_yaml_fidelity.py reads only the JSON.

Where ruamel departs from the spec, fairseq2's reading is what a card means, so the table
keeps ruamel's answer and ``note`` says so.

Encoding of values in the JSON: ``{"str": s}``, ``{"int": "123"}`` (a string, for big
ints), ``{"float": repr(f)}``, ``{"bool": b}``, ``{"null": null}``, ``{"date": iso}``,
``{"datetime": iso}`` (with its UTC offset when it has one), ``{"binary": base64}``,
``{"map": [[key, value], ...]}`` (in order), ``{"seq": [...]}``, ``{"tuple": [...]}`` (a
list used as a mapping key), ``{"set": [...]}`` (sorted); a file ruamel refuses is
``{"error": exception class, "line": line of the offending node}``.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TABLE = HERE / "yaml_fidelity.json"

#: (id, YAML text, note). A scalar case is the document ``v: <form>``.
SCALARS: list[tuple[str, str, str]] = [
    # booleans (10.3.2: true|True|TRUE|false|False|FALSE; nothing else)
    ("bool-true", "true", ""),
    ("bool-True", "True", ""),
    ("bool-TRUE", "TRUE", ""),
    ("bool-false", "false", ""),
    ("bool-FALSE", "FALSE", ""),
    ("bool-tRue", "tRue", "not a core-schema spelling: a string"),
    ("yes", "yes", "YAML 1.1 bool, 1.2 string"),
    ("Yes", "Yes", "YAML 1.1 bool, 1.2 string"),
    ("no", "no", "YAML 1.1 bool, 1.2 string"),
    ("NO", "NO", "YAML 1.1 bool, 1.2 string"),
    ("on", "on", "YAML 1.1 bool, 1.2 string"),
    ("off", "off", "YAML 1.1 bool, 1.2 string"),
    ("y", "y", "YAML 1.1 bool, 1.2 string"),
    ("n", "n", "YAML 1.1 bool, 1.2 string"),
    # nulls (10.3.2: null|Null|NULL|~ and the empty scalar)
    ("null", "null", ""),
    ("Null", "Null", ""),
    ("NULL", "NULL", ""),
    ("tilde", "~", ""),
    ("empty", "", ""),
    ("nUll", "nUll", "a string"),
    # integers (10.3.2: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+)
    ("int", "42", ""),
    ("int-plus", "+12", ""),
    ("int-minus", "-7", ""),
    ("int-zero", "0", ""),
    ("int-minus-zero", "-0", ""),
    ("int-leading-zero", "010", "decimal in 1.2 (8 in 1.1)"),
    ("int-leading-zero-8", "08", "decimal"),
    ("int-leading-zeros", "0009", "decimal"),
    ("int-octal", "0o17", ""),
    ("int-octal-minus", "-0o17", "ruamel also takes a sign on 0o"),
    ("int-hex", "0x1F", ""),
    ("int-hex-lower", "0xff", ""),
    ("int-hex-minus", "-0x10", "ruamel also takes a sign on 0x"),
    ("int-hex-upper-prefix", "0X1F", "only 0x is a prefix: a string"),
    ("int-octal-upper-prefix", "0O17", "only 0o is a prefix: a string"),
    ("int-binary", "0b101", "not in the 1.2 core schema; ruamel reads it"),
    ("int-binary-upper-prefix", "0B101", "a string"),
    ("int-underscore", "1_000", "not in the 1.2 core schema; ruamel drops the underscores"),
    ("int-underscores", "1__0", "ruamel drops the underscores"),
    ("int-hex-underscore", "0x_1F", "ruamel drops the underscores"),
    ("int-leading-underscore", "_1", "ruamel: not a number"),
    ("int-big", "123456789012345678901234567890", ""),
    ("int-big-hex", "0xFFFFFFFFFFFFFFFFFFFF", ""),
    ("int-sign-only-underscore", "-_", "ruamel matches an int and fails to build it: an error"),
    ("int-octal-no-digits", "0o_", "ruamel matches an int and fails to build it: an error"),
    ("int-octal-bad-digit", "0o8", "a string"),
    ("int-octal-empty", "0o", "a string"),
    ("int-hex-empty", "0x", "a string"),
    ("int-sexagesimal", "1:30", "sexagesimal in 1.1, a string in 1.2"),
    ("int-sexagesimal-3", "1:30:00", "a string in 1.2"),
    ("int-trailing-dot-words", "1.2.3", "a version string"),
    ("int-with-letters", "8b", "a string"),
    # floats (10.3.2: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, .inf, .nan)
    ("float", "3.14", ""),
    ("float-exp-neg", "1e-4", "a float in 1.2 (a string in PyYAML's 1.1)"),
    ("float-exp-pos-int", "5e5", ""),
    ("float-exp-upper", "1E6", ""),
    ("float-exp-plus", "1e+5", ""),
    ("float-exp-dot", "1.0e+3", ""),
    ("float-exp-leading-zero", "12e03", ""),
    ("float-norm-eps", "1e-5", ""),
    ("float-minus-exp", "-1E-5", ""),
    ("float-plus-exp", "+1e5", ""),
    ("float-trailing-dot", "0.", ""),
    ("float-trailing-dot-1", "1.", ""),
    ("float-trailing-dot-exp", "1.e5", ""),
    ("float-leading-dot", ".5", ""),
    ("float-leading-dot-minus", "-.5", ""),
    ("float-leading-dot-exp", ".5e3", "1.2 spec: 500.0; ruamel needs a signed exponent: a string"),
    ("float-leading-dot-signed-exp", ".5e+3", "1.2 spec: 500.0; ruamel: 500.0"),
    ("float-minus-leading-dot-exp", "-.5e3", "1.2 spec: -500.0; ruamel: a string"),
    ("float-leading-zero", "0123.5", ""),
    ("float-underscore", "685.230_15e+03", "ruamel drops the underscores"),
    ("float-exp-underscore", "1e_1", "ruamel: a string"),
    ("float-exp-trailing-underscore", "1E3_", "ruamel: a string"),
    ("float-long-exp-underscore", "1e30101_0", "ruamel: a string (yaml-rs: inf)"),
    ("float-zero-exp", "0e0", ""),
    ("float-huge", "1e400", "overflows to inf"),
    ("float-tiny", "1e-400", "underflows to 0.0"),
    ("float-many-digits", "0.1000000000000000055511151231257827", ""),
    ("inf", ".inf", ""),
    ("inf-Inf", ".Inf", ""),
    ("inf-INF", ".INF", ""),
    ("inf-plus", "+.inf", ""),
    ("inf-minus", "-.Inf", ""),
    ("nan", ".nan", ""),
    ("nan-NaN", ".NaN", ""),
    ("nan-NAN", ".NAN", ""),
    ("nan-minus", "-.nan", "the spec has no signed nan: a string"),
    ("inf-bare", "inf", "a string"),
    ("nan-bare", "nan", "a string"),
    ("float-exp-missing", "1e", "a string"),
    ("float-exp-sign-only", "1e+", "a string"),
    ("float-double-dot", "1..2", "a string"),
    ("float-comma", "1,5", "a string"),
    ("float-sexagesimal", "1:30.5", "sexagesimal float in 1.1, a string in 1.2"),
    # dates and timestamps (ruamel keeps YAML 1.1's timestamp type)
    ("date", "2024-01-02", ""),
    ("date-one-digit", "2024-1-2", "a date needs two-digit month and day: a string"),
    ("datetime-T-Z", "2024-01-02T10:20:30Z", ""),
    ("datetime-space-offset", "2024-01-02 10:20:30.5 +02:00", ""),
    ("datetime-naive", "2024-01-02T10:20:30", ""),
    ("datetime-one-digit", "2024-1-2 3:04:05", "the timestamp form takes one-digit parts"),
    ("datetime-fraction-long", "2001-12-14t21:59:43.1234567-05:00", "rounded to microseconds"),
    ("datetime-offset-hours", "2001-12-14 21:59:43.10 -5", ""),
    ("date-invalid-day", "2024-02-30", "matches the date form, is no date: an error"),
    ("date-like-text", "2024-01-02x", "a string"),
    # other plain scalars
    ("equals", "=", "ruamel resolves '=' to tag:yaml.org,2002:value and cannot build it: error"),
    ("merge-as-value", "<<", "ruamel resolves '<<' to the merge tag: as a value, an error"),
    ("string", "hello world", ""),
    ("string-colon", "a:b", ""),
    ("string-url", "hg://facebook/llama-3-8b", ""),
    ("string-hash-inside", "a#b", ""),
    ("string-path", "../ckpt/model.pt", ""),
    ("string-dotfile", ".cache", ""),
    ("string-underscore", "_target_", ""),
    ("string-dashes", "--flag", ""),
    ("string-unicode", "h\u00e9llo \u2603", ""),
    # quoted scalars are strings, whatever they look like
    ("quoted-number", "'010'", ""),
    ("quoted-bool", '"true"', ""),
    ("quoted-null", "''", ""),
    ("single-quote-escape", "'it''s'", ""),
    ("double-escapes", r'"tab\there\nnew \x41\u263A\U0001F600 \\ \" \/ \_ \N \L \P"', ""),
    ("double-folded", '"a\n  b\n\n  c"', "line folding in a double-quoted scalar"),
    ("plain-multiline", "a\n  b\n\n  c", "line folding in a plain scalar"),
    # explicit tags
    ("tag-str", "!!str 123", ""),
    ("tag-str-bool", "!!str true", ""),
    ("tag-int", "!!int '7'", ""),
    ("tag-int-octal", "!!int 010", "decimal in 1.2"),
    ("tag-int-bad", "!!int abc", "an error"),
    ("tag-float", "!!float '3'", ""),
    ("tag-float-bad", "!!float x", "an error"),
    ("tag-bool", "!!bool 'true'", ""),
    ("tag-bool-yes", "!!bool yes", "ruamel's bool constructor knows the 1.1 words"),
    ("tag-bool-bad", "!!bool maybe", "an error"),
    ("tag-null", "!!null ''", ""),
    ("tag-null-text", "!!null foo", "ruamel's null constructor ignores the text"),
    ("tag-timestamp", "!!timestamp 2024-01-02", ""),
    ("tag-timestamp-bad", "!!timestamp yesterday", "an error"),
    ("tag-binary", "!!binary aGVsbG8=", ""),
    ("tag-binary-folded", "!!binary |\n    aGVsbG8g\n    d29ybGQ=", ""),
    ("tag-binary-bad", "!!binary 'not base64!'", "an error"),
    ("tag-verbatim-str", "!<tag:yaml.org,2002:str> 5", ""),
    ("tag-local", "!custom x", "no constructor: an error"),
    ("tag-python", "!!python/name:os.system", "no constructor in the safe loader: an error"),
]

#: (id, YAML text, note): whole documents.
DOCUMENTS: list[tuple[str, str, str]] = [
    ("card", "name: llama3_8b\nbase: llama3\nnum_layers: 32\nlr: 3e-4\nuse_bias: no\n", ""),
    ("keys-yes-on", "yes: 1\non: 2\nno: 3\noff: 4\n", "1.1 bool words as keys stay strings"),
    ("key-true", "true: a\n", "a bool key"),
    ("key-null", "null: a\n~: b\n", "null keys: a duplicate, an error"),
    ("key-int", "1: a\n'1': b\n", "an int key and a string key differ"),
    ("key-float", "1.5: a\n", ""),
    ("key-date", "2024-01-02: a\n", ""),
    ("key-flow-seq", "[1, 2]: a\n", "a list key becomes a tuple"),
    ("key-complex", "? [a, b]\n: c\n? {x: 1}\n: d\n", "a mapping key: unhashable, an error"),
    ("key-equals", "=: x\n", "'=' as a key is a string in ruamel"),
    ("dup-top", "name: a\nlr: 1\nlr: 2\n", "duplicate key: an error"),
    ("dup-nested", "name: a\nconfig:\n  x: 1\n  y: 2\n  x: 3\n", "duplicate at depth: an error"),
    ("dup-flow", "v: {a: 1, a: 2}\n", "an error"),
    ("dup-int-float", "1: a\n1.0: b\n", "equal as Python values: an error"),
    ("dup-bool-int", "true: a\n1: b\n", "equal as Python values: an error"),
    ("dup-quoted", "a: 1\n'a': 2\n", "an error"),
    ("dup-in-list", "v:\n- a: 1\n  a: 2\n", "an error"),
    ("dup-second-doc", "name: a\n---\nname: b\nx: 1\nx: 1\n", "an error for the file"),
    ("merge", "base: &b\n  x: 1\n  y: 2\ncard:\n  <<: *b\n  y: 3\n", ""),
    ("merge-list", "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  w: 0\n", ""),
    ("merge-order", "a: &a {x: 1}\nc:\n  w: 0\n  <<: *a\n", "merged keys come first (ruamel)"),
    ("merge-inline", "c:\n  <<: {x: 1}\n  y: 2\n", ""),
    ("merge-nested", "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n", ""),
    ("merge-dup-own", "a: &a {x: 1}\nc:\n  <<: *a\n  y: 1\n  y: 2\n", "ruamel skips the check"),
    ("merge-twice", "a: &a {x: 1}\nc:\n  <<: *a\n  <<: *a\n", "a second '<<': an error"),
    ("merge-scalar", "c:\n  <<: 1\n", "an error"),
    ("merge-quoted", "c:\n  '<<': 1\n", "a quoted '<<' is a plain key"),
    ("anchor-alias", "a: &x [1, 2]\nb: *x\n", ""),
    ("anchor-scalar", "a: &x 1e-4\nb: *x\n", ""),
    ("alias-key", "a: &k key\n*k : v\n", ""),
    ("set", "v: !!set {a, b, c}\n", ""),
    ("set-dup", "v: !!set {a, a}\n", "an error"),
    ("omap", "v: !!omap [b: 1, a: 2]\n", "ruamel: an ordereddict (a dict, in order)"),
    ("omap-block", "v: !!omap\n- z: 1\n- y: 2\n", ""),
    ("omap-not-pairs", "v: !!omap [a, b]\n", "an error"),
    ("pairs", "v: !!pairs [a: 1, a: 2]\n", "a list of pairs"),
    ("tag-map-on-seq", "v: !!map [a]\n", "an error"),
    ("tag-seq", "v: !!seq [a, 1]\n", ""),
    ("tag-str-on-map", "v: !!str {a: 1}\n", "an error"),
    ("tag-local-map", "v: !thing {a: 1}\n", "an error"),
    ("literal", "v: |\n  line one\n  line two\n", ""),
    ("literal-strip", "v: |-\n  text\n\n", ""),
    ("literal-keep", "v: |+\n  text\n\n", ""),
    ("literal-indent", "v: |2\n    indented\n  x\n", ""),
    ("folded", "v: >\n  one\n  two\n\n  three\n", ""),
    ("folded-more-indented", "v: >\n  a\n    b\n  c\n", ""),
    ("flow-map", "v: {a: 1, b: [x, y], c: {d: ~}}\n", ""),
    ("flow-seq-nested", "v: [[1, 2], [3, [4]]]\n", ""),
    ("flow-empty", "v: {}\nw: []\n", ""),
    ("flow-trailing-comma", "v: [a, b, ]\n", ""),
    ("flow-implicit-null", "v: {a, b: 1}\n", ""),
    ("block-seq", "v:\n- a\n- 1\n- - 2\n  - 3\n", ""),
    ("seq-of-maps", "v:\n  - name: a\n    x: 1\n  - name: b\n", ""),
    ("empty-values", "a:\nb: ''\nc: ~\n", ""),
    ("comments", "# head\nname: a  # trailing\n# between\nx: 1\n", ""),
    ("crlf", "name: a\r\nlr: 1e-4\r\nv: |\r\n  x\r\n  y\r\n", "CRLF line breaks"),
    ("bom", "\ufeffname: a\n", "a byte-order mark"),
    ("tab-after-colon", "name:\ta\nx:\t1\n", "ruamel refuses a tab where a token may start"),
    ("tab-in-plain", "name: a\tb\n", "ruamel: an error"),
    ("tab-before-comment", "name: a\t# c\n", "ruamel: an error"),
    ("tab-in-quotes", "name: \"a\tb\"\nx: 'c\td'\n", ""),
    ("tab-in-literal", "v: |\n  \tx\n", ""),
    ("tab-in-comment", "# a\tb\nname: a\n", ""),
    ("tab-leading", "\tname: a\n", "an error"),
    ("unicode-key", "caf\u00e9: 1\n", ""),
    ("long-string", "v: " + "x" * 2000 + "\n", ""),
    ("deep", "".join("  " * i + f"k{i}:\n" for i in range(30)) + "  " * 30 + "v\n", ""),
    ("multi-doc", "name: a\n---\nname: b\n", ""),
    ("multi-doc-empty", "name: a\n---\n---\nname: b\n", "an empty document is null"),
    ("doc-marker-first", "---\nname: a\n", ""),
    ("doc-marker-comment", "# licence\n---\nname: a\n", ""),
    ("doc-end", "name: a\n...\n---\nname: b\n", ""),
    ("doc-list", "- a\n- b\n", "a document that is a list"),
    ("doc-list-multi", "---\n- a\n---\n- b\n", ""),
    ("doc-scalar", "--- 1e-4\n", ""),
    ("doc-inline-map", "--- {name: a}\n", ""),
    ("yaml11-directive", "%YAML 1.1\n---\nv: yes\nw: 010\nx: 1:30\ny: 0o17\n", "1.1 rules"),
    ("yaml11-sticky", "%YAML 1.1\n---\na: on\n---\nb: on\n", "ruamel keeps 1.1 for what follows"),
    ("yaml11-y-key", "%YAML 1.1\n---\ny: 1\nn: 2\n", "ruamel's 1.1 reads y and n as bools"),
    ("yaml11-sexagesimal-float", "%YAML 1.1\n---\nv: 1:30.5\n", ""),
    ("yaml11-exp", "%YAML 1.1\n---\nv: 1e-4\nw: 1.5e3\n", "ruamel's 1.1 float needs no dot"),
    ("yaml12-directive", "%YAML 1.2\n---\nv: yes\n", ""),
    ("yaml13-directive", "%YAML 1.3\n---\nv: 1\n", "an error"),
    ("tag-directive", "%TAG !e! tag:yaml.org,2002:\n---\nv: !e!int '5'\n", ""),
    ("syntax-error", "a: [1, 2\nb: c\n", "an error"),
    ("undefined-alias", "a: *nope\n", "an error"),
    ("tab-indent", "a:\n\tb: 1\n", "an error"),
]


def encode(value: Any) -> Any:
    """A value as typed JSON (see the module's docstring)."""
    if value is None:
        return {"null": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": "nan" if math.isnan(value) else repr(value)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, bytes):
        return {"binary": base64.b64encode(value).decode()}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    if isinstance(value, dict):
        return {"map": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return {"seq": [encode(v) for v in value]}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"set": sorted((encode(v) for v in value), key=json.dumps)}
    raise TypeError(f"no encoding for {type(value).__name__}")


def cases() -> list[tuple[str, str, str]]:
    return [(f"scalar-{id_}", f"v: {form}\n", note) for id_, form, note in SCALARS] + DOCUMENTS


def _ruamel(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            documents = list(YAML(typ="safe", pure=True).load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return {"error": type(exc).__name__, "line": mark.line + 1 if mark else None}
    except Exception as exc:
        return {"error": type(exc).__name__, "line": None}
    return [encode(document) for document in documents]


def main() -> int:
    import ruamel.yaml

    table = {
        "reader": f"ruamel.yaml {ruamel.yaml.__version__}, YAML(typ='safe', pure=True)",
        "cases": [
            {"id": id_, "yaml": text, "note": note, "expect": _ruamel(text)}
            for id_, text, note in cases()
        ],
    }
    ids = [case["id"] for case in table["cases"]]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    TABLE.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(ids)} cases written to {TABLE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

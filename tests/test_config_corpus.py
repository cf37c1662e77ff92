"""``card.config(key)`` against fairseq2 0.8.1 on every card of both corpora, for every config
key its base chain carries, with no base, a mapping base and a dataclass base.

fairseq2 is not a dependency. Its answers come from first principles: the ``fs2_*``
functions below are an independent reference written from fairseq2 v0.8.1's source (the
public repository at tag ``v0.8.1``, read once; only the ``${env:...}`` regular expression is
taken as it is). They call nothing in ``asyncassets``; only the side under test
(``card.config``) and the store that resolves the cards do. The rules they encode, and where
each comes from:

Cards (``fairseq2/assets/metadata_provider.py``, ``assets/store.py``, ``utils/yaml.py``)

* a card folder is every ``*.yaml`` / ``*.yml`` file under it; each YAML document is a card,
  a dict named by its ``name`` field (``YamlAssetMetadataFileLoader.load``);
* ``StandardAssetStore._do_retrieve_card``: a card's base is the card its ``base`` field names
  (a ``base`` that is not a string means no base); a base no card defines raises
  ``AssetCardError(leaf_name, ...)`` where ``leaf_name`` is the card that was asked for;
* fairseq2 reads YAML with ruamel's safe loader (YAML 1.2); the reference reads it with
  PyYAML's (YAML 1.1), so ``test_config_scalars_read_alike_in_yaml_1_1_and_1_2`` checks that
  every plain scalar inside a config field has the same type (and value) under both.

Which fields are config keys (``models/family.py`` ``StandardModelFamily._CONFIG_KEYS``,
``data/tokenizers/family.py``, ``datasets/family.py``)

* fairseq2 loads ``<kind>_config_overrides``, ``<kind>_config_override`` and
  ``<kind>_config``; every top-level field of a chain's card matching
  ``*_config``, ``*_config_override`` or ``*_config_overrides`` is compared.

Loading (``assets/card.py`` ``StandardAssetConfigLoader.load``)

* the overrides are the ``key`` field of every card of the chain whose value is not null;
  with none, the base config is the answer, as it is (no env substitution);
* otherwise the base is unstructured, then the overrides are merged root card first, the
  card itself last, and the directives run after every merge; a merge error (``TypeError``
  / ``ValueError``) is ``AssetCardError(<card holding the override>)``;
* finally the result is structured to ``type(base)``; a structure error is
  ``AssetCardError(<card asked for>)``.

Merging (``utils/config.py`` ``StandardConfigMerger``)

* an override that is not a mapping replaces the whole config; a config that is not a
  mapping counts as ``{}``;
* in a mapping: ``_del_`` (null = absent; else a list of str) drops those keys of the target
  (absent keys ignored); then every other key of the override: a mapping is merged into the
  target's value (a non-mapping target counts as ``{}``), anything else replaces it; then
  ``_set_`` (null = absent; else a mapping with str keys) sets its keys as they are. Result key
  order: target keys kept, then new override keys, then new ``_set_`` keys.

Directives (``utils/config.py`` ``StandardConfigProcessor`` + ``ReplaceEnvDirective``, the only
default directive, registered in ``composition/lib.py``)

* every ``str`` inside ``dict`` / ``list`` values is rewritten: ``${env:VAR}`` /
  ``${env:VAR:default}`` become the variable, else the default, else ``""``.

Structuring (``utils/structured.py`` ``StandardValueConverter``)

* unstructure: a dataclass becomes a dict of its fields, mappings dicts, lists / tuples / sets
  lists, scalars stay;
* structure to a dataclass: the value must be a mapping; a missing field takes its default
  (an error when it has none), an extra key is an error, fields are structured by their type
  hints; ``int`` / ``float`` are converted with ``int(x)`` / ``float(x)`` unless already
  instances, ``bool`` / ``str`` / ``None`` must be instances, ``list[T]`` takes any sequence,
  ``object`` takes anything.

Two documented extensions of asyncassets are compared as fairseq2 would treat the nearest
thing it supports: a mapping base is structured as ``dict[str, object]`` (fairseq2's
``structure(x, dict)`` refuses an unparameterised ``dict``), and ``base=None`` is the empty
mapping ``{}``.

Results are compared with their types and dict key order (``True`` is not ``1``, a tuple is not
a list). The corpus holds no ``${env:...}``, so the bases carry some to exercise substitution.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import anyio
import pytest
import yaml
from conftest import ISOLATED_VARIABLES, _corpus_candidates

from asyncassets.card import AssetCard
from asyncassets.errors import AssetCardError
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

CORPORA = ("main-027bdeb", "v0.4.6")

#: (card, key) pairs compared per corpus, and cards whose base chain cannot be resolved.
EXPECTED_PAIRS = {"main-027bdeb": 49, "v0.4.6": 15}
EXPECTED_UNRESOLVABLE = {"main-027bdeb": 1, "v0.4.6": 0}

CONFIG_KEY = re.compile(r"\w+_config(?:_overrides?)?")

ENV_VAR = "ASYNCASSETS_CORPUS_CONFIG_DIR"
UNSET_VAR = "ASYNCASSETS_CORPUS_CONFIG_UNSET"
ENV = {ENV_VAR: "/from/env"}


# -- the reference: fairseq2 0.8.1 from first principles -----------------------------------------


class Fs2CardError(Exception):
    """fairseq2 raises ``AssetCardError(name, ...)``; ``name`` is the card it names."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Fs2StructureError(Exception):
    """fairseq2's ``StructureError``."""


class Fs2MissingBase(Exception):
    def __init__(self, leaf: str, base: str) -> None:
        super().__init__(f"{base} base asset of the {leaf} asset card does not exist")
        self.leaf = leaf
        self.base = base


def fs2_read_cards(folder: Path) -> dict[str, dict[str, Any]]:
    """name -> YAML document, for every card of the folder."""
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert isinstance(document, dict), path
            name = document["name"]
            assert isinstance(name, str), path
            # Env cards (name@env) would need the store's env layering: the corpora have none.
            assert "@" not in name, f"{path}: env card {name!r} is not modelled here"
            assert name not in cards, f"{path}: card {name!r} defined twice"
            cards[name] = document
    return cards


def fs2_chain(cards: Mapping[str, Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    """The card ``name`` and its bases, root card first."""
    chain: list[Mapping[str, Any]] = []
    current = name
    while True:
        document = cards.get(current)
        if document is None:
            raise Fs2MissingBase(name, current)
        chain.append(document)
        base = document.get("base")
        if not isinstance(base, str):
            break
        assert len(chain) <= len(cards), f"base cycle from {name!r}"
        current = base
    chain.reverse()
    return chain


def fs2_config_keys(chain: Sequence[Mapping[str, Any]]) -> set[str]:
    return {k for card in chain for k in card if isinstance(k, str) and CONFIG_KEY.fullmatch(k)}


def fs2_merge(config: Any, overrides: Any) -> Any:
    if not isinstance(overrides, Mapping):
        return overrides
    if not isinstance(config, Mapping):
        config = {}
    return fs2_merge_map(config, overrides)


def fs2_merge_map(target: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    ignored: set[str] = set()
    del_keys = source.get("_del_")
    if del_keys is not None:
        if not isinstance(del_keys, list):
            raise TypeError("_del_ must be a list")
        for del_key in del_keys:
            if not isinstance(del_key, str):
                raise TypeError("_del_ elements must be str")
            ignored.add(del_key)
    output = {k: copy.deepcopy(v) for k, v in target.items() if k not in ignored}
    for key, value in source.items():
        if key in ("_del_", "_set_"):
            continue
        if isinstance(value, Mapping):
            below = output.get(key)
            output[key] = fs2_merge_map(below if isinstance(below, Mapping) else {}, value)
        else:
            output[key] = copy.deepcopy(value)
    set_keys = source.get("_set_")
    if set_keys is not None:
        if not isinstance(set_keys, Mapping):
            raise TypeError("_set_ must be a mapping")
        for set_key, value in set_keys.items():
            if not isinstance(set_key, str):
                raise TypeError("_set_ keys must be str")
            output[set_key] = copy.deepcopy(value)
    return output


FS2_ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def fs2_process(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, list):
        return [fs2_process(item, env) for item in value]
    if isinstance(value, dict):
        return {k: fs2_process(v, env) for k, v in value.items()}
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            found = env.get(match.group(1))
            if found is None:
                found = match.group(2)
            return "" if found is None else found

        return FS2_ENV_PATTERN.sub(replace, value)
    return value


def fs2_unstructure(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: fs2_unstructure(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {fs2_unstructure(k): fs2_unstructure(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [fs2_unstructure(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise Fs2StructureError(f"cannot unstructure {type(value)}")


def fs2_structure(value: Any, kind: Any) -> Any:
    origin, args = get_origin(kind) or kind, get_args(kind)
    if origin is object:
        return value
    if isinstance(origin, type) and dataclasses.is_dataclass(origin):
        if isinstance(value, origin):
            return value
        if not isinstance(value, Mapping):
            raise Fs2StructureError(f"{origin.__name__} needs a mapping")
        values = fs2_structure(value, dict[str, object])
        hints = get_type_hints(origin)
        kwargs = {}
        for field in dataclasses.fields(origin):
            item = values.pop(field.name, dataclasses.MISSING)
            if not field.init:
                continue
            if item is dataclasses.MISSING:
                if (
                    field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING
                ):
                    raise Fs2StructureError(f"{field.name} has no default")
                continue
            kwargs[field.name] = fs2_structure(item, hints[field.name])
        if values:
            raise Fs2StructureError(f"extra keys {sorted(values)}")
        return origin(**kwargs)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise Fs2StructureError("dict needs a mapping")
        return {fs2_structure(k, args[0]): fs2_structure(v, args[1]) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, Sequence):
            raise Fs2StructureError("list needs a sequence")
        return [fs2_structure(item, args[0]) for item in value]
    if origin in (int, float):
        if isinstance(value, origin):
            return value
        try:
            return origin(value)
        except (TypeError, ValueError) as exc:
            raise Fs2StructureError(str(exc)) from None
    if origin in (bool, str, type(None)):
        if isinstance(value, origin):
            return value
        raise Fs2StructureError(f"{value!r} is not {origin}")
    raise NotImplementedError(f"the reference does not structure {kind}")


def fs2_load(
    chain: Sequence[Mapping[str, Any]], key: str, base: Any, env: Mapping[str, str]
) -> Any:
    """fairseq2's ``StandardAssetConfigLoader.load(card, base, key)`` for the card at the end of
    ``chain`` (root first). A mapping base is structured as ``dict[str, object]``."""
    overrides = [(card["name"], card[key]) for card in chain if card.get(key) is not None]
    if not overrides:
        return base
    card_name = chain[-1]["name"]
    try:
        config = fs2_unstructure(base)
    except Fs2StructureError:
        raise Fs2CardError(card_name) from None
    for holder, override in overrides:
        try:
            config = fs2_merge(config, override)
        except (TypeError, ValueError):
            raise Fs2CardError(holder) from None
        config = fs2_process(config, env)
    kind = dict[str, object] if isinstance(base, Mapping) else type(base)
    try:
        return fs2_structure(config, kind)
    except Fs2StructureError:
        raise Fs2CardError(card_name) from None


# -- bases: a dataclass (and its mapping) shaped like what the overrides set --------------------


def base_class(shape: Mapping[str, Any], name: str) -> type[Any]:
    """A dataclass with a field for every key of ``shape`` (a nested mapping is a nested
    dataclass), defaults that differ from the overrides' values, and a field no override
    touches whose default holds an env directive."""
    fields: list[tuple[str, Any, Any]] = []
    for key, value in shape.items():
        assert key.isidentifier(), key
        if isinstance(value, Mapping):
            nested = base_class(value, f"{name}_{key}")
            fields.append((key, nested, dataclasses.field(default_factory=nested)))
        elif isinstance(value, bool):
            fields.append((key, bool, dataclasses.field(default=not value)))
        elif isinstance(value, int | float):
            fields.append((key, type(value), dataclasses.field(default=value + 1)))
        elif isinstance(value, str):
            fields.append((key, str, dataclasses.field(default=f"${{env:{ENV_VAR}}}/{key}")))
        elif isinstance(value, list):
            kinds = {type(item) for item in value}
            element = kinds.pop() if len(kinds) == 1 else object
            fields.append((key, list[element], dataclasses.field(default_factory=list)))  # type: ignore[valid-type]
        else:
            fields.append((key, object, dataclasses.field(default="base")))
    if "base_only" not in shape:
        default = f"${{env:{ENV_VAR}}}/base-only"
        fields.append(("base_only", str, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name, fields)


def base_mapping(instance: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = fs2_unstructure(instance)
    mapping["base_list"] = [f"${{env:{UNSET_VAR}:fallback}}", f"${{env:{UNSET_VAR}}}", 3]
    return mapping


# -- comparison ---------------------------------------------------------------------------------


def typed(value: Any) -> Any:
    """``value`` as a tree that keeps types and dict key order, for ``==``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, typed(getattr(value, f.name))) for f in dataclasses.fields(value)]
        return (type(value), items)
    if isinstance(value, dict):
        return (dict, [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [typed(v) for v in value])
    return (type(value), value)


def assert_same(actual_call: Any, expected_call: Any) -> None:
    """``actual_call()`` gives what ``expected_call()`` gives, or raises an AssetCardError
    naming the same card when it raises Fs2CardError."""
    try:
        expected = expected_call()
    except Fs2CardError as fs2_error:
        with pytest.raises(AssetCardError) as info:
            actual_call()
        assert info.value.name == fs2_error.name
        return
    actual = actual_call()
    assert actual == expected
    assert typed(actual) == typed(expected)


# -- the corpora, read at collection time ----------------------------------------------------------


def corpus_root() -> Path | None:
    """The folder the ``corpus_dir`` fixture uses (None when it is absent: tests skip)."""
    for candidate in _corpus_candidates():
        if (candidate / "fairseq2-cards").is_dir():
            return candidate
    return None


ROOT = corpus_root()
REFERENCE = {c: fs2_read_cards(ROOT / "fairseq2-cards" / c) for c in CORPORA} if ROOT else {}


def collect() -> tuple[list[Any], list[Any]]:
    pairs: list[Any] = []
    unresolvable: list[Any] = []
    for corpus, cards in REFERENCE.items():
        for name in sorted(cards):
            try:
                chain = fs2_chain(cards, name)
            except Fs2MissingBase as missing:
                param = pytest.param(corpus, name, missing.base, id=f"{corpus}/{name}")
                unresolvable.append(param)
                continue
            for key in sorted(fs2_config_keys(chain)):
                pairs.append(pytest.param(corpus, name, key, id=f"{corpus}/{name}/{key}"))
    return pairs, unresolvable


PAIRS, UNRESOLVABLE = collect()


@pytest.fixture(scope="module")
def resolved(corpus_dir: Path) -> dict[str, dict[str, AssetCard | AssetCardError]]:
    """corpus -> card name -> the store's resolved card, or the error resolving it raised.
    Each corpus is loaded once for the module."""
    assert corpus_dir == ROOT

    async def load(folder: Path) -> dict[str, AssetCard | AssetCardError]:
        cards: dict[str, AssetCard | AssetCardError] = {}
        async with AssetStore([FileAssetMetadataProvider(folder)], env_resolvers=[]) as store:
            for canonical in sorted(await store.asset_names()):
                name, _, env = canonical.partition("@")
                assert env == "", f"env card {canonical!r} is not modelled here"
                try:
                    cards[name] = await store.retrieve_card(name)
                except AssetCardError as exc:
                    cards[name] = exc
        return cards

    with pytest.MonkeyPatch.context() as patch:
        for variable in ISOLATED_VARIABLES:
            patch.delenv(variable, raising=False)
        return {c: anyio.run(load, corpus_dir / "fairseq2-cards" / c) for c in CORPORA}


def resolved_card(
    resolved: Mapping[str, Mapping[str, AssetCard | AssetCardError]], corpus: str, name: str
) -> AssetCard:
    card = resolved[corpus][name]
    if isinstance(card, AssetCardError):
        raise AssertionError(f"the store cannot resolve {name!r}: {card}")
    return card


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("corpus", "name", "key"), PAIRS)
def test_config_matches_fairseq2(
    resolved: dict[str, dict[str, AssetCard | AssetCardError]], corpus: str, name: str, key: str
) -> None:
    card = resolved_card(resolved, corpus, name)
    chain = fs2_chain(REFERENCE[corpus], name)

    # No base: the merged overrides, env from os.environ.
    assert_same(lambda: card.config(key), lambda: fs2_load(chain, key, {}, os.environ))

    # The shape the overrides give, to build bases whose keys they meet.
    shape = fs2_load(chain, key, {}, ENV)
    assert isinstance(shape, dict), "a non-mapping override: the bases below need another shape"
    kind = base_class(shape, f"{name.replace('.', '_')}_{key}")

    # A mapping base: untouched keys stay, env directives in them are substituted.
    mapping = base_mapping(kind())
    assert_same(
        lambda: card.config(key, mapping, env=ENV), lambda: fs2_load(chain, key, mapping, ENV)
    )
    assert mapping == base_mapping(kind()), "the base must not change"

    # A dataclass base: an instance of its class, nested dataclasses rebuilt.
    instance = kind()
    assert_same(
        lambda: card.config(key, instance, env=ENV), lambda: fs2_load(chain, key, instance, ENV)
    )
    assert instance == kind(), "the base must not change"


@pytest.mark.parametrize(("corpus", "name", "missing"), UNRESOLVABLE)
def test_card_with_a_missing_base_raises_like_fairseq2(
    resolved: dict[str, dict[str, AssetCard | AssetCardError]],
    corpus: str,
    name: str,
    missing: str,
) -> None:
    outcome = resolved[corpus][name]
    assert type(outcome) is AssetCardError, outcome
    assert outcome.name == name  # fairseq2: AssetCardError(leaf_name, ...)
    assert missing in str(outcome)


def store_config_keys(card: AssetCard) -> set[str]:
    return {
        k
        for c in card.chain()
        for k in c.raw_metadata
        if isinstance(k, str) and CONFIG_KEY.fullmatch(k)
    }


def test_pairs_compared_per_corpus(
    resolved: dict[str, dict[str, AssetCard | AssetCardError]],
) -> None:
    # The reference and the store see the same cards ...
    assert {c: set(cards) for c, cards in resolved.items()} == {
        c: set(cards) for c, cards in REFERENCE.items()
    }
    # ... the same (card, key) pairs and the same unresolvable cards ...
    store_pairs = {
        (corpus, name, key)
        for corpus, cards in resolved.items()
        for name, card in cards.items()
        if isinstance(card, AssetCard)
        for key in store_config_keys(card)
    }
    assert store_pairs == {tuple(p.values) for p in PAIRS}
    store_unresolvable = {
        (corpus, name)
        for corpus, cards in resolved.items()
        for name, card in cards.items()
        if not isinstance(card, AssetCard)
    }
    assert store_unresolvable == {tuple(p.values[:2]) for p in UNRESOLVABLE}
    # ... and exactly this many were compared.
    assert {c: sum(p.values[0] == c for p in PAIRS) for c in CORPORA} == EXPECTED_PAIRS
    assert {
        c: sum(p.values[0] == c for p in UNRESOLVABLE) for c in CORPORA
    } == EXPECTED_UNRESOLVABLE


# -- YAML 1.1 (the reference's PyYAML) and YAML 1.2 (fairseq2's ruamel) read the same ------------

_CORE_12 = [  # YAML 1.2 core schema (spec 10.3.2), the tag of a plain scalar
    ("tag:yaml.org,2002:null", re.compile(r"~|null|Null|NULL|")),
    ("tag:yaml.org,2002:bool", re.compile(r"true|True|TRUE|false|False|FALSE")),
    ("tag:yaml.org,2002:int", re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
            r"|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN"
        ),
    ),
]
#: Plain scalars whose value is the same in YAML 1.1 and 1.2, per 1.1 tag.
_UNAMBIGUOUS = {
    "tag:yaml.org,2002:null": re.compile(r"~|null|Null|NULL|"),
    "tag:yaml.org,2002:bool": re.compile(r"true|True|TRUE|false|False|FALSE"),
    "tag:yaml.org,2002:int": re.compile(r"[-+]?(0|[1-9][0-9]*)"),
    "tag:yaml.org,2002:float": re.compile(r"[-+]?(0|[1-9][0-9]*)\.[0-9]+([eE][-+][0-9]+)?"),
}


def _core_12_tag(text: str) -> str:
    for tag, pattern in _CORE_12:
        if pattern.fullmatch(text):
            return tag
    return "tag:yaml.org,2002:str"


def _scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(key)
            yield from _scalars(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)


@pytest.mark.parametrize("corpus", CORPORA)
def test_config_scalars_read_alike_in_yaml_1_1_and_1_2(corpus_dir: Path, corpus: str) -> None:
    folder = corpus_dir / "fairseq2-cards" / corpus
    checked, differing = 0, []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml")):
        for document in yaml.compose_all(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader):
            assert isinstance(document, yaml.MappingNode)
            for key, value in document.value:
                if not CONFIG_KEY.fullmatch(key.value):
                    continue
                for scalar in _scalars(value):
                    if scalar.style is not None:  # quoted or block: a string in both
                        continue
                    checked += 1
                    tag, text = scalar.tag, scalar.value
                    if tag == "tag:yaml.org,2002:str":
                        same = _core_12_tag(text) == tag
                    else:
                        pattern = _UNAMBIGUOUS.get(tag)
                        same = pattern is not None and pattern.fullmatch(text) is not None
                    if not same:
                        line = scalar.start_mark.line + 1
                        differing.append(f"{path.name}:{line}: {text!r} ({tag})")
    assert checked > 0
    assert differing == []

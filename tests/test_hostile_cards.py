"""Hostile and broken card files: whatever lies in a card folder, the store serves every good
card and reports each bad file as a :class:`Problem` naming the file (and line when known).

Limits per card file (the spec): at most 8 MiB; at most 150,000 YAML values counting every
alias expansion and every document; nesting at most 100 levels deep. A file past a limit is a
``too-large`` problem, a syntax or construction error a ``yaml`` problem, a file that cannot
be read (a FIFO, a device, a socket) a ``read`` problem or is skipped.

Every case runs next to a good card (``name: good``); cases are built once per session. No
test asserts on time (``bench/hostile.py`` reports the times); memory is asserted through
tracemalloc.
"""

from __future__ import annotations

import functools
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hostile_files import (
    billion_laughs,
    block_mappings,
    make_dev_zero_link,
    make_fifo,
    make_looping_folder,
    make_socket,
    make_symlink_loop,
    merge_bomb,
)

from asyncassets import (
    AssetCardNotFoundError,
    AssetStore,
    FileAssetMetadataProvider,
    Problem,
)
from asyncassets.parsing import parse_card_file

GOOD = b"name: good\nmodel_family: toy\n"
VICTIM = b"name: victim\nmodel_family: toy\n"
#: A hostile file must not cost more than this much Python memory to parse.
MEMORY_BUDGET = 256 * 2**20
CSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PARSER_FILE = "file:///cards/hostile.yaml"
PARSER_SOURCE = "file:///cards"

LIMIT = frozenset({"too-large"})
SYNTAX = frozenset({"yaml"})


# -- hostile contents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """A card file an attacker (or an accident) can put into a shared card folder."""

    id: str
    build: Callable[[], bytes]
    #: The problem kinds the file may be reported as.
    kinds: frozenset[str]

    @functools.cached_property
    def data(self) -> bytes:
        return self.build()


def _case(id: str, kinds: frozenset[str], build: Callable[[], bytes]) -> Hostile:
    return Hostile(id, functools.cache(build), kinds)


#: Files that must be rejected whole: no card of theirs is served.
REJECTED = [
    _case(
        "500_nested_flow_sequences",
        LIMIT,
        lambda: b"name: hostile\nx: " + b"[" * 500 + b"]" * 500 + b"\n",
    ),
    _case(
        "500_nested_flow_mappings",
        LIMIT,
        lambda: b"name: hostile\nx: " + b"{a: " * 500 + b"1" + b"}" * 500 + b"\n",
    ),
    # libyaml itself gives up at 1,000 levels: either kind says what is wrong.
    _case(
        "2000_nested_flow_sequences",
        LIMIT | SYNTAX,
        lambda: b"name: hostile\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    ),
    _case("500_nested_block_mappings", LIMIT, lambda: block_mappings(500)),
    _case(
        "500_nested_block_sequences",
        LIMIT,
        lambda: b"name: hostile\nx:\n  " + b"- " * 500 + b"lol\n",
    ),
    _case("billion_laughs_9_levels", LIMIT, lambda: billion_laughs(9)),
    _case("billion_laughs_20_levels", LIMIT, lambda: billion_laughs(20)),
    _case("alias_bomb_through_merge_keys", LIMIT, merge_bomb),
    _case(
        "file_over_8_mib",
        LIMIT,
        lambda: b"name: hostile\npad: " + b"x" * (8 * 2**20) + b"\n",
    ),
    # Documents count toward the value budget, even empty ones.
    _case("200_000_empty_documents", LIMIT, lambda: b"---\n" * 200_000),
    _case(
        "100_000_tiny_card_documents",
        LIMIT,
        lambda: b"".join(b"---\nname: c%d\n" % i for i in range(100_000)),
    ),
    _case(
        "500_000_item_flow_list",
        LIMIT,
        lambda: b"name: hostile\nx: [" + b"1," * 500_000 + b"1]\n",
    ),
    _case("5000_digit_int", SYNTAX, lambda: b"name: hostile\nx: " + b"7" * 5000 + b"\n"),
    _case("impossible_timestamp", SYNTAX, lambda: b"name: hostile\nreleased: 2001-13-45\n"),
    _case(
        "unknown_python_tag",
        SYNTAX,
        lambda: b"name: hostile\nx: !!python/object/apply:os.system ['true']\n",
    ),
    _case("unknown_local_tag", SYNTAX, lambda: b"name: hostile\nx: !secret lol\n"),
    _case("recursive_alias", LIMIT | SYNTAX, lambda: b"name: hostile\nx: &a [*a]\n"),
    _case("mapping_as_mapping_key", SYNTAX, lambda: b"name: hostile\n? {a: b}\n: 1\n"),
    _case("merge_of_a_scalar", SYNTAX, lambda: b"name: hostile\nx:\n  <<: 1\n"),
    _case("syntax_error", SYNTAX, lambda: b"name: hostile\nx: [unclosed\n"),
    # fairseq2 refuses a file with a duplicate key, at any depth: so do we, never "last wins"
    _case("duplicate_key", SYNTAX, lambda: b"name: hostile\nmodel_family: a\nmodel_family: b\n"),
    _case("duplicate_nested_key", SYNTAX, lambda: b"name: hostile\nc:\n  d:\n    x: 1\n    x: 2\n"),
    _case("duplicate_key_in_flow", SYNTAX, lambda: b"name: hostile\nx: [{a: 1, a: 1}]\n"),
    # merges of merges: each level doubles the pairs, never built past the value limit
    _case("merge_doubling", LIMIT, lambda: merge_doubling(40)),
    _case("invalid_utf8", SYNTAX, lambda: b"name: hostile\nx: caf\xc3\x28\xff\n"),
    _case("nul_bytes", SYNTAX, lambda: b"name: hostile\nx: a\x00b\n"),
]
REJECTED_IDS = [case.id for case in REJECTED]

#: Big files within every limit: they are cards like any other.
WITHIN_LIMITS = [
    _case("7_mib_scalar", frozenset(), lambda: b"name: big\nvalue: " + b"v" * (7 * 2**20) + b"\n"),
    _case("1_mib_explicit_key", frozenset(), lambda: b"name: big\n? " + b"k" * 2**20 + b"\n: v\n"),
]


def merge_doubling(levels: int) -> bytes:
    """Each mapping merges the previous one twice over: 2**levels pairs if flattened."""
    lines = [b"name: hostile", b"m0: &m0 {k0: 0}"]
    for i in range(1, levels):
        lines.append(b"m%d: &m%d {<<: [*m%d, *m%d], k%d: %d}" % (i, i, i - 1, i - 1, i, i))
    return b"\n".join(lines) + b"\n"


def url(path: Path) -> str:
    """The URL problems and cards carry for a local file: not percent-encoded."""
    return "file://" + os.fspath(path)


def about(problems: list[Problem], path: Path) -> list[Problem]:
    """The problems about ``path`` (a file, or anything under a folder)."""
    target = url(path)
    return [p for p in problems if p.file == target or (p.file or "").startswith(target + "/")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A card folder holding the good card."""
    path = tmp_path / "cards"
    path.mkdir()
    (path / "good.yaml").write_bytes(GOOD)
    return path


def replace_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def write_case(folder: Path, case: Hostile) -> Path:
    path = folder / "hostile.yaml"
    path.write_bytes(case.data)
    return path


# -- non-regular files --------------------------------------------------------------------------


#: Files (named ``<id>.yaml``) that are not regular files: the reader must neither block on
#: them nor read them forever.
SPECIAL_FILES: dict[str, Callable[[Path], None]] = {
    "fifo": make_fifo,
    "symlink_to_dev_zero": make_dev_zero_link,
    "socket": make_socket,
    "symlink_loop": make_symlink_loop,
}
SPECIAL = {**SPECIAL_FILES, "symlink_loop_folder": make_looping_folder}


def make_special(folder: Path, id: str) -> Path:
    path = folder / (id if id == "symlink_loop_folder" else f"{id}.yaml")
    SPECIAL[id](path)
    return path


# -- initial load -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", REJECTED, ids=REJECTED_IDS)
async def test_a_hostile_file_is_a_problem_and_the_good_card_is_served(
    folder: Path, case: Hostile
) -> None:
    hostile = write_case(folder, case)
    store = AssetStore([FileAssetMetadataProvider(folder)])

    assert (await store.retrieve_card("good")).field("model_family").value == "toy"
    problems = about(await store.check(), hostile)
    assert problems, f"no problem reported for {hostile}"
    assert {p.kind for p in problems} <= case.kinds
    assert all(p.file == url(hostile) for p in problems)


@pytest.mark.parametrize("case", REJECTED, ids=REJECTED_IDS)
async def test_a_hostile_file_defines_no_card(folder: Path, case: Hostile) -> None:
    write_case(folder, case)
    store = AssetStore([FileAssetMetadataProvider(folder)])
    assert await store.asset_names() == {"good@"}


@pytest.mark.parametrize("case", REJECTED, ids=REJECTED_IDS)
async def test_the_store_api_raises_nothing_but_asset_errors_around_a_hostile_file(
    folder: Path, case: Hostile
) -> None:
    hostile = write_case(folder, case)
    provider = FileAssetMetadataProvider(folder)
    store = AssetStore([provider])

    # Any exception but the AssetError expected here fails the test as itself.
    await store.load()
    assert (await store.retrieve_card("good")).name == "good"
    with pytest.raises(AssetCardNotFoundError):
        await store.retrieve_card("hostile")
    assert [card.name async for card in store.find_cards("model_family", "toy")] == ["good"]
    await store.check()
    await provider.refresh([os.fspath(hostile)])
    await provider.refresh()
    assert (await store.retrieve_card("good")).name == "good"


async def test_every_hostile_file_in_one_folder_leaves_the_good_card_served(
    folder: Path,
) -> None:
    hostile = []
    for case in REJECTED:
        path = folder / f"{case.id}.yaml"
        path.write_bytes(case.data)
        hostile.append(path)
    specials = [make_special(folder, id) for id in SPECIAL]
    store = AssetStore([FileAssetMetadataProvider(folder)])

    assert (await store.retrieve_card("good")).name == "good"
    assert await store.asset_names() == {"good@"}
    problems = await store.check()
    for path in hostile:
        assert about(problems, path), f"no problem reported for {path.name}"
    for path in specials:
        assert {p.kind for p in about(problems, path)} <= {"read"}
    good = url(folder / "good.yaml")
    assert not [p for p in problems if p.file == good]


# -- values within the limits -----------------------------------------------------------------


@pytest.mark.parametrize("case", WITHIN_LIMITS, ids=[case.id for case in WITHIN_LIMITS])
async def test_a_large_file_within_the_limits_is_a_card_like_any_other(
    folder: Path, case: Hostile
) -> None:
    (folder / "big.yaml").write_bytes(case.data)
    store = AssetStore([FileAssetMetadataProvider(folder)])

    card = await store.retrieve_card("big")
    assert card.to_dict() == yaml.load(case.data, Loader=CSafeLoader)
    assert (await store.retrieve_card("good")).name == "good"
    assert not await store.check()


async def test_100_000_empty_documents_never_break_the_store(folder: Path) -> None:
    hostile = folder / "empty.yaml"
    hostile.write_bytes(b"---\n" * 100_000)
    store = AssetStore([FileAssetMetadataProvider(folder)])

    assert (await store.retrieve_card("good")).name == "good"
    assert await store.asset_names() == {"good@"}
    assert {p.kind for p in about(await store.check(), hostile)} <= LIMIT


async def test_a_utf16_file_with_a_bom_is_a_card_or_a_problem(folder: Path) -> None:
    hostile = folder / "utf16.yaml"
    hostile.write_bytes("name: wide\nmodel_family: toy\n".encode("utf-16"))
    store = AssetStore([FileAssetMetadataProvider(folder)])

    assert (await store.retrieve_card("good")).name == "good"
    card = await store.maybe_retrieve_card("wide")
    problems = about(await store.check(), hostile)
    if card is None:
        assert problems
    else:
        assert card.field("model_family").value == "toy"
        assert not problems


# -- problems: what they say --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line"),
    [
        pytest.param(b"name: hostile\nmodel_family: toy\nreleased: 2001-13-45\n", 3, id="date"),
        pytest.param(b"name: hostile\nx: " + b"7" * 5000 + b"\n", 2, id="5000_digit_int"),
        pytest.param(b"name: hostile\nx: !!python/name:os.system\n", 2, id="python_tag"),
        pytest.param(b"name: hostile\n\n? {a: b}\n: 1\n", 3, id="mapping_key"),
        pytest.param(b"name: hostile\nx: !secret lol\n", 2, id="unknown_tag"),
    ],
)
async def test_a_construction_error_names_the_file_and_line(
    folder: Path, data: bytes, line: int
) -> None:
    hostile = folder / "hostile.yaml"
    hostile.write_bytes(data)
    store = AssetStore([FileAssetMetadataProvider(folder)])

    [problem] = about(await store.check(), hostile)
    assert (problem.kind, problem.file, problem.line) == ("yaml", url(hostile), line)
    assert str(problem).startswith(f"{hostile}:{line}: ")


async def test_a_syntax_error_names_a_line(folder: Path) -> None:
    hostile = folder / "hostile.yaml"
    hostile.write_bytes(b"name: hostile\nx: [unclosed\n")
    store = AssetStore([FileAssetMetadataProvider(folder)])

    [problem] = about(await store.check(), hostile)
    assert problem.kind == "yaml"
    assert problem.line is not None and problem.line >= 2


async def test_a_problem_names_the_file_url_without_percent_encoding(folder: Path) -> None:
    hostile = folder / "bad #1 100% ?.yaml"
    hostile.write_bytes(b"name: hostile\nx: [unclosed\n")
    store = AssetStore([FileAssetMetadataProvider(folder)])

    problems = await store.check()
    assert [p.file for p in problems] == ["file://" + os.fspath(hostile)]


async def test_a_python_tag_never_runs_code(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = folder / "hostile.yaml"
    hostile.write_text(f"name: hostile\nx: !!python/object/apply:os.system ['touch {marker}']\n")
    store = AssetStore([FileAssetMetadataProvider(folder)])

    assert (await store.retrieve_card("good")).name == "good"
    assert [p.kind for p in about(await store.check(), hostile)] == ["yaml"]
    assert not marker.exists()


# -- files that are not regular files ----------------------------------------------------------


@pytest.mark.parametrize("id", list(SPECIAL))
async def test_a_file_that_is_not_a_regular_file_is_a_read_problem_or_skipped(
    folder: Path, id: str
) -> None:
    special = make_special(folder, id)
    store = AssetStore([FileAssetMetadataProvider(folder)])

    assert (await store.retrieve_card("good")).field("model_family").value == "toy"
    assert await store.asset_names() == {"good@"}
    problems = await store.check()
    # Nothing but read problems about the special file (a loop that re-lists good.yaml
    # would show up as a duplicate of the good card).
    assert problems == about(problems, special)
    assert {p.kind for p in problems} <= {"read"}


async def test_an_oversized_file_is_never_read_whole(folder: Path) -> None:
    hostile = folder / "huge.yaml"
    with hostile.open("wb") as f:
        f.write(b"name: hostile\nx: ")
        f.truncate(64 * 2**20)  # sparse: costs no disk
    store = AssetStore([FileAssetMetadataProvider(folder)])

    tracemalloc.start()
    try:
        assert (await store.retrieve_card("good")).name == "good"
        problems = about(await store.check(), hostile)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p.kind for p in problems] == ["too-large"]
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB: the 64 MiB file was read"


# -- hot refresh --------------------------------------------------------------------------------


@pytest.fixture
def victim(folder: Path) -> Path:
    """A good card file the test later replaces by a hostile one."""
    path = folder / "victim.yaml"
    path.write_bytes(VICTIM)
    return path


@pytest.mark.parametrize("case", REJECTED, ids=REJECTED_IDS)
async def test_a_good_file_turned_hostile_keeps_its_last_good_cards(
    folder: Path, victim: Path, case: Hostile
) -> None:
    provider = FileAssetMetadataProvider(folder)
    store = AssetStore([provider])
    assert (await store.retrieve_card("victim")).name == "victim"

    replace_file(victim, case.data)
    await provider.refresh([os.fspath(victim)])

    card = await store.retrieve_card("victim")
    assert (card.field("model_family").value, card.source) == ("toy", url(victim))
    assert (await store.retrieve_card("good")).name == "good"
    problems = about(await store.check(), victim)
    assert problems, "the refresh reported no problem"
    assert {p.kind for p in problems} <= case.kinds


@pytest.mark.parametrize("id", list(SPECIAL_FILES))
async def test_a_good_file_turned_special_never_breaks_the_store(folder: Path, id: str) -> None:
    victim = folder / f"{id}.yaml"
    victim.write_bytes(VICTIM)
    provider = FileAssetMetadataProvider(folder)
    store = AssetStore([provider])
    assert (await store.retrieve_card("victim")).name == "victim"

    victim.unlink()
    make_special(folder, id)
    await provider.refresh([os.fspath(victim)])

    assert (await store.retrieve_card("good")).name == "good"
    assert await store.asset_names() <= {"good@", "victim@"}
    problems = await store.check()
    assert problems == about(problems, victim)
    assert {p.kind for p in problems} <= {"read"}


# -- the pure parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", REJECTED, ids=REJECTED_IDS)
def test_the_parser_turns_a_hostile_file_into_a_problem(case: Hostile) -> None:
    record = parse_card_file(case.data, file=PARSER_FILE, source=PARSER_SOURCE)

    assert record.entries == ()
    assert record.problems
    assert {p.kind for p in record.problems} <= case.kinds
    assert {(p.file, p.source) for p in record.problems} == {(PARSER_FILE, PARSER_SOURCE)}


@pytest.mark.parametrize("case", REJECTED, ids=REJECTED_IDS)
def test_parsing_a_hostile_file_has_bounded_memory(case: Hostile) -> None:
    data = case.data
    tracemalloc.start()
    try:
        parse_card_file(data, file=PARSER_FILE, source=PARSER_SOURCE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BUDGET, f"parsing {case.id} peaked at {peak / 2**20:.0f} MiB"

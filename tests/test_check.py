"""``store.check()``: one test per problem it reports, each with source, file and line."""

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

from asyncassets.problems import Problem
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

MakeProvider = Callable[[dict[str, str]], FileAssetMetadataProvider]


def readable(url: str) -> str:
    """A file URL the way people read it in a message: local files as plain paths."""
    return url.removeprefix("file://")


async def check_files(
    make_provider: MakeProvider, files: dict[str, str]
) -> tuple[FileAssetMetadataProvider, list[Problem]]:
    provider = make_provider(files)
    return provider, await AssetStore([provider]).check()


async def only_problem(make_provider: MakeProvider, files: dict[str, str]) -> Problem:
    provider, problems = await check_files(make_provider, files)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.source == provider.source
    return problem


async def test_clean_store_has_no_problems(make_provider: MakeProvider) -> None:
    _, problems = await check_files(
        make_provider, {"m.yaml": "name: fam\n---\nname: tiny\nbase: fam\n---\nname: tiny@aws\n"}
    )
    assert problems == []


async def test_yaml_syntax_error_is_reported_with_its_line(make_provider: MakeProvider) -> None:
    provider = make_provider({"bad.yaml": "name: tiny\nmodel_config: {dim: 4\nother: 1\n"})
    [problem] = await AssetStore([provider]).check()
    assert problem.kind == "yaml"
    assert problem.file == f"{provider.source}/bad.yaml"
    assert problem.line in (2, 3)
    assert "invalid YAML" in problem.message


async def test_document_that_is_not_a_mapping_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "name: a\n---\n- a\n- list\n"})
    assert problem.kind == "not-a-mapping"
    assert problem.line == 3
    assert "document 2 is a list" in problem.message


async def test_document_without_a_name_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "model_family: toy\n"})
    assert (problem.kind, problem.line) == ("name", 1)
    assert "no 'name'" in problem.message


async def test_non_string_name_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "model_family: toy\nname: 7\n"})
    assert (problem.kind, problem.line) == ("name", 2)
    assert "'name' must be a string, not int" in problem.message


async def test_empty_name_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "name: ''\n"})
    assert problem.kind == "name"
    assert "empty" in problem.message


async def test_name_with_two_at_signs_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "name: tiny@aws@east\n"})
    assert (problem.kind, problem.line) == ("name", 1)
    assert "tiny@aws@east" in problem.message
    assert "more than one '@'" in problem.message


async def test_name_starting_with_at_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "name: '@aws'\n"})
    assert problem.kind == "name"
    assert "must not start with '@'" in problem.message


async def test_non_string_base_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "name: tiny\nbase: [a, b]\n"})
    assert (problem.kind, problem.line, problem.card) == ("base", 2, "tiny@")
    assert "'base' must be a string, not list" in problem.message


async def test_base_with_an_at_sign_is_reported(make_provider: MakeProvider) -> None:
    files = {"m.yaml": "name: fam\n---\nname: tiny\nbase: fam@aws\n"}
    problem = await only_problem(make_provider, files)
    assert (problem.kind, problem.line) == ("base", 4)
    assert "without '@'" in problem.message
    assert "fam@aws" in problem.message


async def test_missing_base_is_reported_naming_both_cards(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": "name: tiny\ndim: 4\nbase: ghost\n"})
    [problem] = await AssetStore([provider]).check()
    assert problem.kind == "missing-base"
    assert (problem.file, problem.line) == (f"{provider.source}/m.yaml", 3)
    assert "'tiny'" in problem.message
    assert "'ghost'" in problem.message


async def test_base_cycle_is_reported_once_naming_the_cycle(make_provider: MakeProvider) -> None:
    files = {"m.yaml": "name: a\nbase: b\n---\nname: b\nbase: a\n---\nname: c\nbase: a\n"}
    problem = await only_problem(make_provider, files)
    assert problem.kind == "cycle"
    assert "a -> b -> a" in problem.message
    assert problem.line in (2, 5)


async def test_duplicate_name_in_one_provider_reports_both_places(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider(
        {"a.yaml": "name: tiny\nwho: a\n", "b.yaml": "# header\nname: tiny\nwho: b\n"}
    )
    [problem] = await AssetStore([provider]).check()
    assert problem.kind == "duplicate"
    assert (problem.file, problem.line) == (f"{provider.source}/b.yaml", 2)
    assert f"{readable(provider.source)}/a.yaml:1" in problem.message


async def test_duplicate_name_in_one_provider_first_file_in_path_order_wins(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"b.yaml": "name: tiny\nwho: b\n", "a.yaml": "name: tiny\nwho: a\n"})
    card = await AssetStore([provider]).retrieve_card("tiny")
    assert card.field("who").value == "a"


async def test_duplicate_name_in_one_file_first_document_wins(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"m.yaml": "name: tiny\nwho: first\n---\nname: tiny\nwho: second\n"})
    store = AssetStore([provider])
    [problem] = await store.check()
    assert (problem.kind, problem.line) == ("duplicate", 4)
    assert (await store.retrieve_card("tiny")).field("who").value == "first"


async def test_name_shadowed_across_providers_is_reported(make_provider: MakeProvider) -> None:
    system = make_provider({"s.yaml": "name: tiny\nwho: system\n"})
    user = make_provider({"u.yaml": "name: tiny\nwho: user\n"})
    [problem] = await AssetStore([system], user_providers=[user]).check()
    assert problem.kind == "shadowed"
    assert problem.source == system.source
    assert (problem.file, problem.line) == (f"{system.source}/s.yaml", 1)
    assert f"{readable(user.source)}/u.yaml:1" in problem.message


async def test_problem_reads_file_colon_line_colon_message(make_provider: MakeProvider) -> None:
    provider = make_provider({"m.yaml": "name: a\n---\nname: 7\n"})
    [problem] = await AssetStore([provider]).check()
    assert str(problem) == f"{readable(provider.source)}/m.yaml:3: {problem.message}"


async def test_local_problem_shows_a_plain_path(write_cards: Callable[..., object]) -> None:
    root = write_cards({"m.yaml": "name: 7\n"})
    [problem] = await AssetStore([FileAssetMetadataProvider(root)]).check()
    assert str(problem).startswith(f"{root}/m.yaml:1: ")


@pytest.mark.parametrize(
    "bad",
    ["name: a\nx: {unclosed\n", "- just\n- a list\n", "name: 7\n", "name: b\nbase: [x]\n"],
    ids=["yaml", "not-a-mapping", "name", "base"],
)
async def test_one_bad_file_never_stops_the_other_files_from_loading(
    make_provider: MakeProvider, bad: str
) -> None:
    files = {"a/good.yaml": "name: good\n", "bad.yaml": bad, "z.yaml": "name: z\n"}
    provider = make_provider(files)
    store = AssetStore([provider])
    assert {"good@", "z@"} <= await store.asset_names()
    assert len(await store.check()) == 1


async def test_every_problem_of_a_store_is_reported(make_provider: MakeProvider) -> None:
    provider = make_provider(
        {
            "a.yaml": "name: a\nbase: ghost\n---\nname: 1\n",
            "b.yaml": "name: [x\n",
            "c.yaml": "name: a\n",
        }
    )
    problems = await AssetStore([provider]).check()
    assert sorted(p.kind for p in problems) == ["duplicate", "missing-base", "name", "yaml"]
    assert all(p.file is not None and p.line is not None for p in problems)


async def test_env_override_without_a_plain_card_is_reported(make_provider: MakeProvider) -> None:
    problem = await only_problem(make_provider, {"m.yaml": "name: a\n---\nname: ghost@aws\n"})
    assert (problem.kind, problem.line, problem.card) == ("orphan-override", 3, "ghost@aws")
    assert "no card named 'ghost'" in problem.message


async def test_parent_folder_symlink_does_not_read_files_twice(card_dir: Path) -> None:
    (card_dir / "sub").mkdir()
    (card_dir / "a.yaml").write_text("name: a\n")
    (card_dir / "sub" / "up").symlink_to("..")
    store = AssetStore([FileAssetMetadataProvider(card_dir)])
    assert await store.check() == []
    assert await store.asset_names() == frozenset({"a@"})

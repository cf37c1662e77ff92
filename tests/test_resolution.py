"""The resolution rules of DESIGN.md, one test per rule, on every backend.

1. ``name@env`` asks for exactly ``env``; ``name@`` for no env; a bare name for the active
   envs ``["user", detected]``.
2. Overrides are laid over the plain card lowest precedence first, so ``user`` wins.
3. ``base`` resolves the same way, with the same envs, across files and stores.
"""

from collections.abc import Callable

import pytest
from conftest import both_backends as anyio_backend  # noqa: F401  (asyncio and trio)

from asyncassets.errors import AssetCardError, AssetCardNotFoundError
from asyncassets.providers.file import FileAssetMetadataProvider
from asyncassets.store import AssetStore

MakeProvider = Callable[[dict[str, str]], FileAssetMetadataProvider]

#: A plain card with one override per env; each sets ``who`` and its own field.
TINY_WITH_OVERRIDES = """\
name: tiny
who: plain
checkpoint: plain.pt
tokenizer: plain.model
dim: 8
---
name: tiny@aws
who: aws
checkpoint: aws.pt
from_aws: true
---
name: tiny@user
who: user
from_user: true
"""


@pytest.fixture
def make_store(make_provider: MakeProvider) -> Callable[..., AssetStore]:
    """``make_store(files, **store_options)``: a store over one provider of ``files``."""

    def make(files: dict[str, str], **options: object) -> AssetStore:
        return AssetStore([make_provider(files)], **options)  # type: ignore[arg-type]

    return make


# -- rule 1: which envs a requested name asks for ---------------------------------------------


async def test_name_at_env_applies_that_env_whatever_env_is_detected(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="gcp")
    card = await store.retrieve_card("tiny@aws")
    assert card.field("checkpoint").value == "aws.pt"


async def test_name_at_env_does_not_apply_the_user_override(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES})
    card = await store.retrieve_card("tiny@aws")
    assert card.field("who").value == "aws"
    assert not card.has_field("from_user")


async def test_name_at_nothing_applies_no_env(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="aws")
    card = await store.retrieve_card("tiny@")
    assert card.field("who").value == "plain"
    assert not card.has_field("from_aws")
    assert not card.has_field("from_user")


async def test_bare_name_applies_user_and_detected_env(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="aws")
    card = await store.retrieve_card("tiny")
    assert card.field("from_aws").value is True
    assert card.field("from_user").value is True


async def test_bare_name_without_a_detected_env_applies_only_user(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES})
    card = await store.retrieve_card("tiny")
    assert card.field("who").value == "user"
    assert not card.has_field("from_aws")


async def test_override_of_an_inactive_env_is_not_applied(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="gcp")
    card = await store.retrieve_card("tiny")
    assert card.field("checkpoint").value == "plain.pt"


async def test_active_envs_are_user_then_detected(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({}, default_env="aws")
    assert store.active_envs == ("user", "aws")


async def test_card_name_is_the_plain_name_whatever_was_asked(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES})
    card = await store.retrieve_card("tiny@aws")
    assert card.name == "tiny"
    assert card.to_dict()["name"] == "tiny"


# -- rule 2: layering -------------------------------------------------------------------------


async def test_user_env_overrides_detected_env(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="aws")
    card = await store.retrieve_card("tiny")
    assert card.field("who").value == "user"


async def test_layering_is_lowest_precedence_first(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="aws")
    card = await store.retrieve_card("tiny")
    # plain < aws < user: each field comes from the highest layer that sets it.
    assert card.field("tokenizer").value == "plain.model"
    assert card.field("checkpoint").value == "aws.pt"
    assert card.field("who").value == "user"


async def test_override_replaces_a_whole_top_level_field(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store(
        {
            "tiny.yaml": """\
            name: tiny
            model_config: {dim: 8, layers: 2}
            ---
            name: tiny@aws
            model_config: {dim: 16}
            """
        },
        default_env="aws",
    )
    card = await store.retrieve_card("tiny")
    assert card.to_dict()["model_config"] == {"dim": 16}


async def test_override_in_another_file_is_applied(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {
            "models/tiny.yaml": "name: tiny\ncheckpoint: plain.pt\n",
            "clusters/aws.yaml": "name: tiny@aws\ncheckpoint: aws.pt\n",
        },
        default_env="aws",
    )
    assert (await store.retrieve_card("tiny")).field("checkpoint").value == "aws.pt"


# -- rule 3: bases ----------------------------------------------------------------------------


async def test_base_fields_are_inherited(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {"m.yaml": "name: fam\nmodel_family: toy\n---\nname: tiny\nbase: fam\ndim: 8\n"}
    )
    card = await store.retrieve_card("tiny")
    assert card.field("model_family").value == "toy"
    assert card.base is not None and card.base.name == "fam"


async def test_base_chain_is_followed_to_the_end(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {
            "m.yaml": """\
            name: root
            license: mit
            ---
            name: fam
            base: root
            model_family: toy
            ---
            name: tiny
            base: fam
            """
        }
    )
    card = await store.retrieve_card("tiny")
    assert [c.name for c in card.chain()] == ["tiny", "fam", "root"]
    assert card.field("license").value == "mit"


async def test_base_chain_crosses_files(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {
            "families/toy.yaml": "name: fam\nmodel_family: toy\n",
            "models/tiny.yaml": "name: tiny\nbase: fam\n",
        }
    )
    assert (await store.retrieve_card("tiny")).field("model_family").value == "toy"


async def test_base_chain_crosses_providers(make_provider: MakeProvider) -> None:
    system = make_provider({"fam.yaml": "name: fam\nmodel_family: toy\n"})
    user = make_provider({"tiny.yaml": "name: tiny\nbase: fam\n"})
    store = AssetStore([system], user_providers=[user])
    assert (await store.retrieve_card("tiny")).field("model_family").value == "toy"


async def test_env_propagates_into_bases(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {
            "m.yaml": """\
            name: fam
            checkpoint: plain.pt
            ---
            name: fam@aws
            checkpoint: aws.pt
            ---
            name: tiny
            base: fam
            """
        },
        default_env="aws",
    )
    assert (await store.retrieve_card("tiny")).field("checkpoint").value == "aws.pt"


async def test_explicit_env_propagates_into_bases(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {
            "m.yaml": """\
            name: fam
            checkpoint: plain.pt
            ---
            name: fam@aws
            checkpoint: aws.pt
            ---
            name: tiny
            base: fam
            """
        }
    )
    assert (await store.retrieve_card("tiny@aws")).field("checkpoint").value == "aws.pt"
    assert (await store.retrieve_card("tiny@")).field("checkpoint").value == "plain.pt"


async def test_override_may_change_the_base(make_store: Callable[..., AssetStore]) -> None:
    store = make_store(
        {
            "m.yaml": """\
            name: small
            dim: 8
            ---
            name: big
            dim: 64
            ---
            name: tiny
            base: small
            ---
            name: tiny@aws
            base: big
            """
        },
        default_env="aws",
    )
    assert (await store.retrieve_card("tiny")).field("dim").value == 64
    assert (await store.retrieve_card("tiny@")).field("dim").value == 8


# -- provider precedence ----------------------------------------------------------------------


async def test_user_providers_win_over_system_providers(make_provider: MakeProvider) -> None:
    system = make_provider({"t.yaml": "name: tiny\nwho: system\n"})
    user = make_provider({"t.yaml": "name: tiny\nwho: user\n"})
    store = AssetStore([system], user_providers=[user])
    assert (await store.retrieve_card("tiny")).field("who").value == "user"


async def test_later_added_system_provider_wins(make_provider: MakeProvider) -> None:
    first = make_provider({"t.yaml": "name: tiny\nwho: first\n"})
    second = make_provider({"t.yaml": "name: tiny\nwho: second\n"})
    store = AssetStore([first])
    store.metadata_providers.append(second)
    assert (await store.retrieve_card("tiny")).field("who").value == "second"


async def test_later_added_user_provider_wins(make_provider: MakeProvider) -> None:
    first = make_provider({"t.yaml": "name: tiny\nwho: first\n"})
    second = make_provider({"t.yaml": "name: tiny\nwho: second\n"})
    store = AssetStore(user_providers=[first, second])
    assert (await store.retrieve_card("tiny")).field("who").value == "second"


async def test_a_later_system_provider_does_not_beat_a_user_provider(
    make_provider: MakeProvider,
) -> None:
    user = make_provider({"t.yaml": "name: tiny\nwho: user\n"})
    system = make_provider({"t.yaml": "name: tiny\nwho: system\n"})
    store = AssetStore(user_providers=[user])
    store.metadata_providers.append(system)
    assert (await store.retrieve_card("tiny")).field("who").value == "user"


async def test_shadowing_replaces_the_whole_card(make_provider: MakeProvider) -> None:
    system = make_provider({"t.yaml": "name: tiny\nwho: system\nonly_system: 1\n"})
    user = make_provider({"t.yaml": "name: tiny\nwho: user\n"})
    store = AssetStore([system], user_providers=[user])
    assert not (await store.retrieve_card("tiny")).has_field("only_system")


async def test_override_from_another_provider_is_laid_over_the_plain_card(
    make_provider: MakeProvider,
) -> None:
    system = make_provider({"t.yaml": "name: tiny\ncheckpoint: plain.pt\ndim: 8\n"})
    user = make_provider({"t.yaml": "name: tiny@user\ncheckpoint: mine.pt\n"})
    store = AssetStore([system], user_providers=[user])
    card = await store.retrieve_card("tiny")
    assert card.field("checkpoint").value == "mine.pt"
    assert card.field("dim").value == 8


# -- the detected env -------------------------------------------------------------------------


async def test_default_env_selects_the_detected_env(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="aws")
    assert (await store.retrieve_card("tiny")).field("from_aws").value is True


async def test_asyncassets_env_variable_selects_the_detected_env(
    make_store: Callable[..., AssetStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCASSETS_ENV", "aws")
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES})
    assert (await store.retrieve_card("tiny")).field("from_aws").value is True


async def test_default_env_wins_over_the_variable(
    make_store: Callable[..., AssetStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCASSETS_ENV", "aws")
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, default_env="gcp")
    assert store.active_envs == ("user", "gcp")
    assert not (await store.retrieve_card("tiny")).has_field("from_aws")


async def test_slurm_cluster_name_selects_the_detected_env(
    make_store: Callable[..., AssetStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "aws")
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES})
    assert (await store.retrieve_card("tiny")).field("from_aws").value is True


async def test_asyncassets_env_wins_over_env_resolvers(
    make_store: Callable[..., AssetStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "gcp")
    monkeypatch.setenv("ASYNCASSETS_ENV", "aws")
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES})
    assert store.active_envs == ("user", "aws")


async def test_custom_env_resolver_selects_the_detected_env(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"tiny.yaml": TINY_WITH_OVERRIDES}, env_resolvers=[lambda: "aws"])
    assert (await store.retrieve_card("tiny")).field("from_aws").value is True


async def test_first_env_resolver_that_answers_wins(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({}, env_resolvers=[lambda: None, lambda: "aws", lambda: "gcp"])
    assert store.active_envs == ("user", "aws")


async def test_custom_env_resolvers_replace_the_slurm_resolver(
    make_store: Callable[..., AssetStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "aws")
    store = make_store({}, env_resolvers=[])
    assert store.active_envs == ("user",)


async def test_detected_env_named_user_is_not_applied_twice(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({}, default_env="user")
    assert store.active_envs == ("user",)


# -- errors -----------------------------------------------------------------------------------


async def test_missing_base_error_names_both_cards(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"m.yaml": "name: tiny\nbase: ghost\n"})
    with pytest.raises(AssetCardError, match=r"'tiny'.*'ghost'") as info:
        await store.retrieve_card("tiny")
    assert not isinstance(info.value, AssetCardNotFoundError)


async def test_missing_base_error_names_the_file_and_line(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider({"m.yaml": "name: tiny\ndim: 8\nbase: ghost\n"})
    with pytest.raises(AssetCardError, match=r"m\.yaml:3"):
        await AssetStore([provider]).retrieve_card("tiny")


async def test_missing_base_deeper_in_the_chain_names_the_card_that_lacks_it(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"m.yaml": "name: fam\nbase: ghost\n---\nname: tiny\nbase: fam\n"})
    with pytest.raises(AssetCardError, match=r"'fam'.*'ghost'"):
        await store.retrieve_card("tiny")


async def test_base_cycle_error_names_the_cycle(make_store: Callable[..., AssetStore]) -> None:
    cards = "name: a\nbase: b\n---\nname: b\nbase: c\n---\nname: c\nbase: a\n"
    store = make_store({"m.yaml": cards})
    with pytest.raises(AssetCardError, match="a -> b -> c -> a"):
        await store.retrieve_card("a")


async def test_card_that_is_its_own_base_is_a_cycle(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"m.yaml": "name: a\nbase: a\n"})
    with pytest.raises(AssetCardError, match="a -> a"):
        await store.retrieve_card("a")


async def test_cycle_made_by_an_env_override_is_reported(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store(
        {"m.yaml": "name: a\n---\nname: b\nbase: a\n---\nname: a@aws\nbase: b\n"},
        default_env="aws",
    )
    with pytest.raises(AssetCardError, match="a -> b -> a"):
        await store.retrieve_card("a")


async def test_unknown_name_lists_close_matches(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"m.yaml": "name: llama3_2_1b\n---\nname: mistral_7b\n"})
    with pytest.raises(AssetCardNotFoundError, match="did you mean llama3_2_1b") as info:
        await store.retrieve_card("llama3_2_1c")
    assert info.value.suggestions == ("llama3_2_1b",)
    assert info.value.name == "llama3_2_1c"


async def test_unknown_name_without_close_matches_names_the_card(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"m.yaml": "name: llama3_2_1b\n"})
    with pytest.raises(AssetCardNotFoundError, match="no card named 'zzz'") as info:
        await store.retrieve_card("zzz")
    assert "did you mean" not in str(info.value)


async def test_unknown_name_is_a_lookup_error(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"m.yaml": "name: a\n"})
    with pytest.raises(LookupError):
        await store.retrieve_card("b")


async def test_override_without_a_plain_card_says_so(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"m.yaml": "name: tiny@aws\ncheckpoint: aws.pt\n"})
    with pytest.raises(AssetCardNotFoundError, match=r"tiny@aws.*no plain card"):
        await store.retrieve_card("tiny")


async def test_invalid_requested_name_is_not_found(make_store: Callable[..., AssetStore]) -> None:
    store = make_store({"m.yaml": "name: a\n"})
    with pytest.raises(AssetCardNotFoundError, match="more than one '@'"):
        await store.retrieve_card("a@b@c")


async def test_card_whose_document_was_rejected_says_why(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"m.yaml": "name: tiny\nbase: [a, b]\n"})
    with pytest.raises(AssetCardNotFoundError, match=r"tiny.*rejected.*m\.yaml:2.*'base'"):
        await store.retrieve_card("tiny")


async def test_field_error_names_card_and_field_path(
    make_store: Callable[..., AssetStore],
) -> None:
    store = make_store({"m.yaml": "name: tiny\nmodel_config: {dim: eight}\n"})
    card = await store.retrieve_card("tiny")
    with pytest.raises(AssetCardError, match=r"card 'tiny'.*'model_config\.dim'.*int"):
        card.field("model_config").field("dim").as_(int)

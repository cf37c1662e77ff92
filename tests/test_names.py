"""Card names: ``foo`` is the plain card, ``foo@env`` an environment override."""

import pytest

from asyncassets.names import CardName, InvalidNameError, canonical_name, parse_card_name


def test_bare_name_has_no_env() -> None:
    assert parse_card_name("llama3") == CardName("llama3", None)


def test_name_with_trailing_at_has_no_env() -> None:
    assert parse_card_name("llama3@") == CardName("llama3", None)


def test_name_with_env_is_split_at_the_at_sign() -> None:
    assert parse_card_name("llama3@slurm") == CardName("llama3", "slurm")


def test_canonical_name_of_a_bare_name_ends_with_at() -> None:
    assert canonical_name("llama3") == "llama3@"


def test_canonical_name_of_an_override_is_unchanged() -> None:
    assert canonical_name("llama3@slurm") == "llama3@slurm"


def test_canonical_property_matches_canonical_name() -> None:
    assert parse_card_name("a@b").canonical == "a@b"
    assert parse_card_name("a").canonical == "a@"


def test_empty_name_is_rejected() -> None:
    with pytest.raises(InvalidNameError, match="empty"):
        parse_card_name("")


def test_name_starting_with_at_is_rejected() -> None:
    with pytest.raises(InvalidNameError, match="must not start with '@'"):
        parse_card_name("@slurm")


def test_name_with_two_at_signs_is_rejected() -> None:
    with pytest.raises(InvalidNameError, match="more than one '@'"):
        parse_card_name("a@b@c")


def test_invalid_name_error_quotes_the_name() -> None:
    with pytest.raises(InvalidNameError, match="a@b@c"):
        parse_card_name("a@b@c")


def test_names_may_hold_dots_and_dashes() -> None:
    assert parse_card_name("hg_qwen3_0.6b@aws-east") == CardName("hg_qwen3_0.6b", "aws-east")

"""``ChangeEvent`` and ``Problem`` as JSON: ``to_dict()`` holds only JSON types (sorted name
lists, problems as objects, ``time`` in ISO 8601), ``to_json()`` dumps it, ``from_dict()``
reads it back to an equal value; ``asyncassets watch --json`` prints one event per line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ISOLATED_VARIABLES
from test_watch_local import card, watched

from asyncassets import AssetError, ChangeEvent, Problem

#: Seconds to wait for a line from the command line.
TIMEOUT = 15

PROBLEM = Problem(
    "yaml",
    "invalid YAML: did not find expected ',' or ']'",
    "file:///cards",
    "file:///cards/llama.yaml",
    3,
    "llama@",
    "model_config",
)

EVENT = ChangeEvent(
    added=frozenset({"mistral@", "llama@cluster_a", "gpt2@"}),
    modified=frozenset({"llama@"}),
    removed=frozenset({"old@"}),
    problems=(PROBLEM, Problem("shadowed", "card 'x@' is shadowed", "s3://bucket/cards")),
    source="file:///cards",
    time=datetime(2024, 5, 17, 9, 30, 1, 250000, tzinfo=UTC),
)


# -- ChangeEvent ------------------------------------------------------------------------------


def test_an_event_with_problems_dumps_to_json() -> None:
    assert json.loads(json.dumps(EVENT.to_dict())) == EVENT.to_dict()


def test_to_json_is_json_dumps_of_to_dict() -> None:
    assert json.loads(EVENT.to_json()) == EVENT.to_dict()
    assert "\n" not in EVENT.to_json()


def test_to_dict_lists_names_sorted() -> None:
    data = EVENT.to_dict()
    assert data["added"] == ["gpt2@", "llama@cluster_a", "mistral@"]
    assert data["modified"] == ["llama@"]
    assert data["removed"] == ["old@"]


def test_to_dict_gives_problems_as_objects() -> None:
    assert EVENT.to_dict()["problems"] == [problem.to_dict() for problem in EVENT.problems]


def test_to_dict_gives_the_time_in_iso_8601_with_its_offset() -> None:
    assert EVENT.to_dict()["time"] == "2024-05-17T09:30:01.250000+00:00"


def test_to_dict_keeps_the_source() -> None:
    assert EVENT.to_dict()["source"] == "file:///cards"


def test_an_event_round_trips_to_an_equal_event() -> None:
    again = ChangeEvent.from_dict(json.loads(EVENT.to_json()))
    assert again == EVENT
    assert again.time == EVENT.time  # not part of ==, so compared on its own


def test_a_time_in_another_zone_round_trips() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = ChangeEvent(removed=frozenset({"a@"}), time=datetime(2024, 1, 2, 3, 4, tzinfo=plus_two))
    assert event.to_dict()["time"] == "2024-01-02T03:04:00+02:00"
    assert ChangeEvent.from_dict(event.to_dict()).time == event.time


def test_an_empty_event_round_trips_and_stays_false() -> None:
    empty = ChangeEvent(source="memory://")
    again = ChangeEvent.from_dict(json.loads(empty.to_json()))
    assert again == empty
    assert not again


def test_from_dict_gives_missing_keys_their_defaults() -> None:
    event = ChangeEvent.from_dict({"added": ["a@"]})
    assert event == ChangeEvent(added=frozenset({"a@"}))
    assert event.time.tzinfo is not None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"added": "a@"}, "added"),
        ({"removed": ["a@", 3]}, "removed"),
        ({"problems": {"kind": "yaml"}}, "problems"),
        ({"source": 1}, "source"),
        ({"time": "yesterday"}, "time"),
        ({"time": 1700000000}, "time"),
    ],
)
def test_from_dict_rejects_a_wrong_value_naming_its_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(AssetError, match=repr(key)):
        ChangeEvent.from_dict(data)


def test_an_event_stays_a_frozen_dataclass_with_slots() -> None:
    assert not hasattr(EVENT, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVENT.source = "other"  # type: ignore[misc]


# -- Problem ----------------------------------------------------------------------------------


def test_problem_to_dict_has_every_field_and_where() -> None:
    assert PROBLEM.to_dict() == {
        "kind": "yaml",
        "message": "invalid YAML: did not find expected ',' or ']'",
        "source": "file:///cards",
        "file": "file:///cards/llama.yaml",
        "line": 3,
        "card": "llama@",
        "field": "model_config",
        "where": "/cards/llama.yaml:3: invalid YAML: did not find expected ',' or ']'",
    }


def test_problem_where_is_its_str() -> None:
    for problem in EVENT.problems:
        assert problem.to_dict()["where"] == str(problem)


def test_a_problem_round_trips_to_an_equal_problem() -> None:
    for problem in EVENT.problems:
        assert Problem.from_dict(json.loads(problem.to_json())) == problem


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"message": "m", "source": "s"}, "kind"),
        ({"kind": "yaml", "message": "m", "source": "s", "line": "3"}, "line"),
        ({"kind": "yaml", "message": "m", "source": "s", "line": True}, "line"),
        ({"kind": "yaml", "message": "m", "source": "s", "file": 7}, "file"),
    ],
)
def test_problem_from_dict_rejects_a_wrong_value_naming_its_key(
    data: dict[str, object], key: str
) -> None:
    with pytest.raises(AssetError, match=repr(key)):
        Problem.from_dict(data)


def test_display_path_is_the_one_from_urls() -> None:
    from asyncassets import problems, urls

    assert problems.display_path is urls.display_path


# -- events from a real store -----------------------------------------------------------------


async def test_an_event_from_a_watched_folder_dumps_and_round_trips(card_dir: Path) -> None:
    (card_dir / "good.yaml").write_text(card("good", 1))
    async with watched(card_dir) as (_, log):
        (card_dir / "broken.yaml").write_text("name: broken\nvalue: [1, 2\n")
        event = await log.wait_for(lambda e: bool(e.problems))
    data = json.loads(json.dumps(event.to_dict()))
    assert data["problems"][0]["file"] == f"file://{card_dir / 'broken.yaml'}"
    assert data["problems"][0]["where"].startswith(f"{card_dir / 'broken.yaml'}:")
    assert datetime.fromisoformat(data["time"]) == event.time
    assert ChangeEvent.from_dict(data) == event


def test_watch_json_prints_one_event_per_line(card_dir: Path) -> None:
    (card_dir / "a.yaml").write_text(card("a", 1))
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncassets", "--store", str(card_dir), "watch", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stderr.readline().startswith("watching ")
        (card_dir / "b.yaml").write_text(card("b", 1))
        event = ChangeEvent.from_dict(json.loads(process.stdout.readline()))
    finally:
        process.kill()
        process.communicate(timeout=TIMEOUT)
    assert event.added == {"b@"}
    assert event.source == f"file://{card_dir}"
    assert event.time.tzinfo is not None

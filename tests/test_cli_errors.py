"""The command line never prints a traceback.

A reader that goes away (``asyncassets list | head -1``) ends the command quietly with
141 (128 + SIGPIPE); an ``ExceptionGroup`` is reported as its first real error in one
line; an unexpected error is one line with a hint to run with ``-v``; Ctrl-C exits 130.

The pipe tests run the real command in a subprocess and close its stdout after one line,
as ``head -1`` does. Each command writes far more than a pipe holds (64 KiB), so it is
still writing when the pipe closes, and exit status 141 proves it saw the closed pipe.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from conftest import ISOLATED_VARIABLES

from asyncassets import AssetCardError, AssetCardNotFoundError, CheckpointCache
from asyncassets.cli import EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED, report_error

#: Seconds to wait for a line or for the process to exit.
TIMEOUT = 30


def start_cli(*args: str) -> subprocess.Popen[bytes]:
    """``python -m asyncassets ARGS`` with stdout and stderr piped to the test."""
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    return subprocess.Popen(
        [sys.executable, "-m", "asyncassets", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def read_one_line_then_close(process: subprocess.Popen[bytes]) -> tuple[bytes, int, str]:
    """What ``| head -1`` does: read a line, close the pipe; then the exit status and
    everything the process wrote on stderr."""
    assert process.stdout is not None
    first = process.stdout.readline()
    process.stdout.close()
    _, stderr = process.communicate(timeout=TIMEOUT)
    return first, process.returncode, stderr.decode()


@pytest.fixture
def many_cards(write_cards: Callable[..., Path]) -> Path:
    """400 model cards whose ``list`` line is ~330 bytes: ~130 KB of output."""
    family = "f" * 300
    return write_cards(
        {f"card_{i:03}.yaml": f"name: card_{i:03}\nmodel_family: {family}\n" for i in range(400)}
    )


@pytest.fixture
def big_card(write_cards: Callable[..., Path]) -> Path:
    """One card with 3,000 fields: ``show --json`` writes ~300 KB."""
    fields = "".join(f"field_{i}: [{', '.join(str(j) for j in range(20))}]\n" for i in range(3000))
    return write_cards({"big.yaml": f"name: big\nmodel_family: llama\n{fields}"})


@pytest.fixture
def duplicated_cards(write_cards: Callable[..., Path]) -> Path:
    """800 files defining the same card: ``check`` reports ~800 problems of ~130 bytes."""
    return write_cards({f"dup_{i:03}.yaml": "name: dup\n" for i in range(800)})


# -- a reader that goes away ------------------------------------------------------------------


def test_list_into_a_closed_pipe_ends_quietly(many_cards: Path) -> None:
    first, code, stderr = read_one_line_then_close(start_cli("--store", str(many_cards), "list"))
    assert first.startswith(b"card_000 ")
    assert stderr == ""
    assert code == EXIT_OUTPUT_CLOSED


def test_list_json_into_a_closed_pipe_ends_quietly(many_cards: Path) -> None:
    process = start_cli("--store", str(many_cards), "list", "--json")
    first, code, stderr = read_one_line_then_close(process)
    assert first == b"[\n"
    assert stderr == ""
    assert code == EXIT_OUTPUT_CLOSED


def test_show_json_of_a_big_card_into_a_closed_pipe_ends_quietly(big_card: Path) -> None:
    process = start_cli("--store", str(big_card), "show", "big", "--json")
    first, code, stderr = read_one_line_then_close(process)
    assert first == b"{\n"
    assert stderr == ""
    assert code == EXIT_OUTPUT_CLOSED


def test_check_into_a_closed_pipe_ends_quietly(duplicated_cards: Path) -> None:
    process = start_cli("--store", str(duplicated_cards), "check")
    first, code, stderr = read_one_line_then_close(process)
    assert b"dup@" in first
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    # The one line on stderr is a warning logged while loading, before the pipe closed.
    assert len(stderr.splitlines()) <= 1, stderr
    assert code == EXIT_OUTPUT_CLOSED


def test_cache_ls_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    fs = fsspec.filesystem("memory")
    prefix = f"/asyncassets-cli-{uuid.uuid4().hex}/{'long-folder-name-' * 8}"
    uris = [f"memory://{prefix}/checkpoint_{i:03}.pt" for i in range(300)]
    for uri in uris:
        fs.pipe(uri.removeprefix("memory://"), b"weights")

    async def fill() -> None:
        cache = CheckpointCache(cache_dir)
        for uri in uris:
            await cache.fetch(uri, progress=False)

    try:
        asyncio.run(fill())
    finally:
        fs.rm(prefix.partition("/long")[0], recursive=True)
    process = start_cli("--cache-dir", str(cache_dir), "cache", "ls", "--json")
    first, code, stderr = read_one_line_then_close(process)
    assert first == b"[\n"
    assert stderr == ""
    assert code == EXIT_OUTPUT_CLOSED


def test_watch_into_a_closed_pipe_ends_quietly(card_dir: Path) -> None:
    (card_dir / "a.yaml").write_text("name: a\n")
    process = start_cli("--store", str(card_dir), "watch")
    assert process.stdout is not None and process.stderr is not None
    banner = process.stderr.readline().decode()
    assert banner.startswith("watching "), banner
    (card_dir / "b.yaml").write_text("name: b\n")
    assert process.stdout.readline().endswith(b"added b@\n")
    process.stdout.close()
    # Each further event is a write into the closed pipe, which ends the command.
    for attempt in range(TIMEOUT):
        (card_dir / f"more_{attempt}.yaml").write_text(f"name: more_{attempt}\n")
        try:
            process.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            continue
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert stderr == b""
    assert process.returncode == EXIT_OUTPUT_CLOSED


# -- exception groups and unexpected errors ---------------------------------------------------
# No ExceptionGroup escapes the public API any more (the store turns every failure into an
# AssetError or a Problem), so these tests hand report_error, the function the command line
# calls with whatever escaped a command, groups of the shapes task groups raise.


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as it reaches the command line."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_group_is_reported_as_its_first_asset_error(capsys: pytest.CaptureFixture[str]) -> None:
    error = AssetCardError("card 'llama': field 'checkpoint' is not set", name="llama")
    group = BaseExceptionGroup(
        "unhandled errors in a TaskGroup",
        [asyncio.CancelledError(), ExceptionGroup("inner", [error, ValueError("later")])],
    )
    assert report_error(raised(group)) == 1
    assert capsys.readouterr().err == (
        "asyncassets: error: card 'llama': field 'checkpoint' is not set (and 1 more error)\n"
    )


def test_a_group_with_one_error_says_only_that_error(capsys: pytest.CaptureFixture[str]) -> None:
    group = ExceptionGroup("one", [ExceptionGroup("nested", [AssetCardError("card 'x': bad")])])
    assert report_error(raised(group)) == 1
    assert capsys.readouterr().err == "asyncassets: error: card 'x': bad\n"


def test_an_unknown_card_in_a_group_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    missing = AssetCardNotFoundError("no card named 'lama'; did you mean 'llama'?", name="lama")
    assert report_error(raised(ExceptionGroup("g", [missing]))) == 2
    assert capsys.readouterr().err == (
        "asyncassets: error: no card named 'lama'; did you mean 'llama'?\n"
    )


def test_an_unexpected_error_is_one_line_with_its_type_and_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inner = BaseExceptionGroup("g", [asyncio.CancelledError(), RuntimeError("boom\n  on two")])
    assert report_error(raised(BaseExceptionGroup("outer", [inner]))) == 1
    assert capsys.readouterr().err == (
        "asyncassets: error: RuntimeError: boom on two (run with -v for the traceback)\n"
    )


def test_an_unexpected_error_without_a_message_is_named_by_its_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert report_error(raised(MemoryError())) == 1
    assert capsys.readouterr().err == (
        "asyncassets: error: MemoryError (run with -v for the traceback)\n"
    )


def test_verbose_prints_the_traceback_before_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_error(raised(ExceptionGroup("g", [KeyError("k")])), verbose=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("  + Exception Group Traceback") or err.startswith("Traceback"), err
    assert err.endswith("\nasyncassets: error: KeyError: 'k'\n"), err


def test_ctrl_c_in_a_group_exits_130_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    group = BaseExceptionGroup("g", [asyncio.CancelledError(), KeyboardInterrupt()])
    assert report_error(raised(group), command="list") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == ""


def test_ctrl_c_ends_watch_with_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_error(raised(KeyboardInterrupt()), command="watch") == 0
    assert capsys.readouterr().err == ""


def test_an_error_from_the_store_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    process = start_cli("--store", str(tmp_path / "missing"), "list")
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert stdout == b""
    assert stderr.decode().splitlines() == [
        f"asyncassets: error: card folder {tmp_path / 'missing'} does not exist"
    ]
    assert process.returncode == 1

"""``asyncassets watch``: one line per change event until Ctrl-C, which exits with 0."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from conftest import ISOLATED_VARIABLES
from test_watch_local import card

#: Seconds to wait for a line or for the process to exit.
TIMEOUT = 15


class WatchProcess:
    """``python -m asyncassets --store ROOT watch`` with its output read line by line."""

    def __init__(self, root: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's stack
        # Ctrl-C as a terminal sends it: a test runner started in the background (``cmd &``
        # in a script) ignores SIGINT, and an ignored SIGINT is inherited across exec.
        restore = (
            "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
            " sys.argv = ['asyncassets', *sys.argv[1:]];"
            " runpy.run_module('asyncassets', run_name='__main__', alter_sys=True)"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", restore, "--store", str(root), "watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout = self._lines(self.process.stdout)
        self.stderr = self._lines(self.process.stderr)

    @staticmethod
    def _lines(stream: IO[str]) -> queue.Queue[str | None]:
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in stream:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        return lines

    @staticmethod
    def next_line(lines: queue.Queue[str | None]) -> str:
        line = lines.get(timeout=TIMEOUT)
        assert line is not None, "the process closed its output"
        return line

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # Say where it hangs: faulthandler dumps every thread on SIGABRT.
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(timeout=TIMEOUT)
            dump = []
            while (line := self.stderr.get(timeout=TIMEOUT)) is not None:
                dump.append(line)
            raise AssertionError(
                f"watch did not exit {TIMEOUT} s after SIGINT; its threads:\n" + "\n".join(dump)
            ) from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def watch_cli(card_dir: Path) -> Iterator[WatchProcess]:
    (card_dir / "foo.yaml").write_text(card("foo", 1))
    watcher = WatchProcess(card_dir)
    try:
        banner = watcher.next_line(watcher.stderr)
        assert banner.startswith("watching file://"), banner
        yield watcher
    finally:
        watcher.stop()


def test_watch_prints_one_line_per_event(watch_cli: WatchProcess, card_dir: Path) -> None:
    (card_dir / "foo.yaml").write_text(card("foo", 2))
    modified = watch_cli.next_line(watch_cli.stdout)
    assert modified.endswith("  modified foo@"), modified
    (card_dir / "bar.yaml").write_text(card("bar", 1))
    added = watch_cli.next_line(watch_cli.stdout)
    assert added.endswith("  added bar@"), added
    (card_dir / "bar.yaml").unlink()
    removed = watch_cli.next_line(watch_cli.stdout)
    assert removed.endswith("  removed bar@"), removed


def test_watch_prints_problems_under_their_event(watch_cli: WatchProcess, card_dir: Path) -> None:
    target = card_dir / "foo.yaml"
    target.write_text("name: foo\nvalue: [1, 2\n")
    assert watch_cli.next_line(watch_cli.stdout).endswith("  problems")
    problem = watch_cli.next_line(watch_cli.stdout)
    assert problem.strip().startswith(f"problem: {target}:"), problem
    target.write_text(card("foo", 3))
    fixed = watch_cli.next_line(watch_cli.stdout)
    assert "modified foo@" in fixed, fixed


def test_watch_exits_0_on_ctrl_c(watch_cli: WatchProcess) -> None:
    assert watch_cli.interrupt() == 0
    assert watch_cli.stdout.get(timeout=TIMEOUT) is None
    leftover = []
    while (line := watch_cli.stderr.get(timeout=TIMEOUT)) is not None:
        leftover.append(line)
    assert not any("Traceback" in line for line in leftover), leftover

"""A card's text never drives the terminal: control characters are printed escaped.

A card folder is untrusted: a name or a field holding ESC (``\\x1b``), BEL or a bare CR,
printed raw by ``list`` or ``show``, could rewrite the terminal's title, clear the screen
or hide what came before on the line. JSON output escapes them itself.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from asyncassets.cli import main as cli_main
from asyncassets.cli import printable

#: Every control character a terminal acts on, but tab and line feed.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

HOSTILE = b"""\
name: "evil\\e]0;pwned\\a"
model_family: "\\e[2J\\e[Hcleared"
note: "ok\\rhidden"
---
name: "other\\e[31m"
base: "evil\\e]0;pwned\\a"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "cards"
    path.mkdir()
    (path / "evil.yaml").write_bytes(HOSTILE)
    return path


def _run(folder: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli_main(["--store", os.fspath(folder), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_escapes_control_characters(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(folder, capsys, "list")
    assert code == 0
    assert not RAW_CONTROL.search(out + err)
    assert "evil\\x1b]0;pwned\\x07" in out


def test_show_escapes_control_characters(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(folder, capsys, "show", "other\x1b[31m")
    assert code == 0
    assert not RAW_CONTROL.search(out + err)
    assert "# other\\x1b[31m" in out


def test_json_output_keeps_the_values_exact(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(folder, capsys, "show", "evil\x1b]0;pwned\x07", "--json")
    assert code == 0
    assert not RAW_CONTROL.search(out)
    assert json.loads(out)["fields"]["note"] == "ok\rhidden"


def test_errors_and_problems_escape_control_characters(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(folder, capsys, "show", "missing\x1b[2J")
    assert code == 2
    assert not RAW_CONTROL.search(out + err)
    assert "missing\\x1b[2J" in err
    (folder / "dup.yaml").write_bytes(b'name: "evil\\e]0;pwned\\a"\n')
    code, out, err = _run(folder, capsys, "check")
    assert code == 1
    assert not RAW_CONTROL.search(out + err)


def test_printable_leaves_text_alone() -> None:
    assert printable("plain text\twith tab\nand lines, ümlaut, 漢字") == (
        "plain text\twith tab\nand lines, ümlaut, 漢字"
    )
    assert printable("\x1b[2J\x07\r\x9b\x7f") == "\\x1b[2J\\x07\\x0d\\x9b\\x7f"

"""Hostile card files, shared by tests/test_hostile_cards.py and bench/hostile.py: contents
an attacker (or an accident) can put in a shared card folder, and files that are not
regular files."""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

__all__ = [
    "billion_laughs",
    "block_mappings",
    "make_dev_zero_link",
    "make_fifo",
    "make_looping_folder",
    "make_socket",
    "make_symlink_loop",
    "merge_bomb",
]


def billion_laughs(levels: int) -> bytes:
    """Wikipedia's "billion laughs": each level a list of nine aliases of the one before."""
    names = [chr(ord("a") + level).encode() for level in range(levels)]
    lines = [b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for below, name in itertools.pairwise(names):
        lines.append(b"%s: &%s [%s]" % (name, name, b",".join([b"*" + below] * 9)))
    return b"\n".join(lines) + b"\n"


def merge_bomb(levels: int = 12, width: int = 9) -> bytes:
    """An alias bomb through merge keys (``<<``): each level merges the one below and holds
    ``width`` aliases of it."""
    keys = b", ".join(b"k%d: lol" % i for i in range(width))
    lines = [b"name: hostile", b"l0: &l0 {%s}" % keys]
    for level in range(1, levels + 1):
        below = b"*l%d" % (level - 1)
        refs = b", ".join(b"m%d_%d: %s" % (level, i, below) for i in range(width))
        lines.append(b"l%d: &l%d {<<: %s, %s}" % (level, level, below, refs))
    return b"\n".join(lines) + b"\n"


def block_mappings(depth: int) -> bytes:
    lines = [b"name: hostile", b"x:"]
    lines += [b"  " * level + b"a:" for level in range(1, depth)]
    lines.append(b"  " * depth + b"a: 1")
    return b"\n".join(lines) + b"\n"


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_dev_zero_link(path: Path) -> None:
    path.symlink_to("/dev/zero")


def make_socket(path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(path.parent)  # a relative name: AF_UNIX paths are short
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path.name)
    finally:
        os.chdir(cwd)


def make_symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


def make_looping_folder(path: Path) -> None:
    path.mkdir()
    (path / "up").symlink_to("..")
    (path / "a").symlink_to("b")
    (path / "b").symlink_to("a")
    (path / "c.yaml").symlink_to("d.yaml")
    (path / "d.yaml").symlink_to("c.yaml")

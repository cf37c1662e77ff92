"""nox sessions: tests, lint, typecheck, bench, demo (`nox -s tests`)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

#: torch for the `distributed` extra (in `test`): pinned to the CPU build this workplace keeps
#: on disk, installed before the extras so that pip takes no multi-GB CUDA build.
TORCH = "torch==2.13.0"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (starts moto_server and gcp-storage-emulator itself)."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "asyncassets", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "asyncassets", "tests", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[s3,gcs,http,hf,serve]", "mypy", "types-pyyaml")
    session.run("mypy", "--strict", "asyncassets")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the baselines they name; they print tables and never fail."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    # fairseq2's YAML reader, the baseline of bench/reading.py (not a dependency of ours)
    session.install("ruamel.yaml==0.18.*")
    scripts = session.posargs or [
        "lookup",
        "reading",
        "remote_load",
        "restart",  # S3 (moto) and GCS (gcp-storage-emulator), fresh processes
        "reload",
        "prefetch",
        "hostile",
        "distributed",
        "hub",
        "reachable",
        "serve",  # needs wrk (Debian's package)
    ]
    for script in scripts:
        session.run("python", f"bench/{script}.py")


@nox.session
def demo(session: nox.Session) -> None:
    session.install(".")
    session.run("asyncassets", "demo")

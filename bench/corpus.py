"""Where the fairseq2 card corpus lies, for the benchmarks that generate stores from it."""

from __future__ import annotations

import os
from pathlib import Path


def corpus_dir() -> Path:
    """``$ASYNCASSETS_CORPUS_DIR`` else ``../shared/corpus`` next to the repository."""
    env = os.environ.get("ASYNCASSETS_CORPUS_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "corpus"
    return root / "fairseq2-cards"

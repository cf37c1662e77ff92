"""``asyncassets demo``: a short, self-contained tour on a temporary store."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from asyncassets import AssetStore, FileAssetMetadataProvider

__all__ = ["run_demo"]

SYSTEM_CARDS = {
    "models/tinylm.yaml": """\
        # A family card and two sizes that inherit from it.
        name: tinylm
        model_family: tinylm
        tokenizer_family: tinylm
        checkpoint: ../checkpoints/tinylm/model.pt

        ---

        name: tinylm_small
        base: tinylm
        model_arch: small
        model_config:
          dim: 256
          num_layers: 4

        ---

        name: tinylm_small@cluster_a
        checkpoint: s3://models-bucket/tinylm/small.pt
        """,
    "datasets/toy.yaml": """\
        name: toy_corpus
        dataset_family: text
        data: ../data/toy
        """,
}

USER_CARDS = {
    "overrides.yaml": """\
        # The user's own override: wins over every other env.
        name: tinylm_small@user
        model_config:
          dim: 512
          num_layers: 4
        """,
}

BROKEN_CARDS = {
    "broken.yaml": """\
        name: good_card
        model_family: tinylm

        ---

        name: orphan
        base: no_such_card
        """,
}


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


async def run_demo(say: Callable[[str], None]) -> None:
    """Create cards in a temporary folder and walk through the main calls."""
    with tempfile.TemporaryDirectory(prefix="asyncassets-demo-") as tmp:
        root = Path(tmp)
        _write(root / "system", SYSTEM_CARDS)
        _write(root / "user", USER_CARDS)
        _write(root / "broken", BROKEN_CARDS)
        say(f"1. Wrote cards to {root}/system and {root}/user")

        store = AssetStore(
            [FileAssetMetadataProvider(root / "system")],
            user_providers=[FileAssetMetadataProvider(root / "user")],
            default_env="cluster_a",
        )
        async with store:
            names = sorted(await store.asset_names())
            say(f"2. The store has {len(names)} canonical names: {', '.join(names)}")

            card = await store.retrieve_card("tinylm_small")
            chain = " -> ".join(c.name for c in card.chain())
            say(f"3. retrieve_card('tinylm_small') with envs {list(store.active_envs)}:")
            say(f"     base chain        {chain}")
            say(f"     model_family      {card.field('model_family').value}  (from the base)")
            dim = card.field("model_config").field("dim").as_(int)
            say(f"     model_config.dim  {dim}  (the user override wins)")
            say(f"     checkpoint        {card.field('checkpoint').as_uri()}  (cluster_a)")

            plain = await store.retrieve_card("tinylm_small@")
            say("4. retrieve_card('tinylm_small@') asks for no env:")
            say(f"     checkpoint        {plain.field('checkpoint').as_uri()}")
            say("     (a relative path, resolved against the card file's folder)")

            try:
                await store.retrieve_card("tinylm_smal")
            except Exception as exc:
                say(f"5. A typo: {type(exc).__name__}: {exc}")

        broken = AssetStore([FileAssetMetadataProvider(root / "broken")])
        async with broken:
            problems = await broken.check()
            say(f"6. check() on a folder with one planted error finds {len(problems)}:")
            for problem in problems:
                say(f"     {problem}")
            good = await broken.retrieve_card("good_card")
            say(f"   ...and the other card still loads: {good.name}")
    say("Done. Next: `asyncassets --store DIR list`, `asyncassets --store DIR check`.")

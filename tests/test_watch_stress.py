"""Hot reload under load: readers never see a broken store while files churn.

Twenty tasks call ``retrieve_card`` in a loop while another makes 500 seeded random edits,
renames, creations and deletions in a watched folder. A reader may only miss a card that was
deleted, moved or not created yet; once the writer stops, the watched store must settle on
exactly what a freshly loaded store sees.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from test_watch_local import card, wait_until

from asyncassets import AssetCardNotFoundError, AssetStore, FileAssetMetadataProvider

SEED = 20240604
OPERATIONS = 500
READERS = 20
INITIAL_FILES = 30
FOLDERS = ("", "a", "b", "a/deep")
#: Longest pause between two operations of the writer (uniform from 0).
MAX_PAUSE = 0.03


class Churn:
    """The writer's model of the folder: which file holds which card, and which names a
    reader may legitimately miss (ever deleted, moved or created during the run)."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.files: dict[Path, str] = {}
        self.names: list[str] = []
        self.volatile: set[str] = set()
        self.counter = 0

    def _new_path(self) -> Path:
        self.counter += 1
        folder = self.root / self.rng.choice(FOLDERS)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"f{self.counter}.{self.rng.choice(['yaml', 'yml'])}"

    def _write(self, path: Path, name: str) -> None:
        # Written to a temporary file and renamed: a reader never sees a half-written file,
        # so a card that is only edited must never go missing.
        text = card(name, self.rng.randrange(1_000_000), base="root")
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(text)
        os.replace(temp, path)

    def create(self, *, during_run: bool = True) -> None:
        name = f"c{len(self.names)}"
        if during_run:
            self.volatile.add(name)
        self.names.append(name)
        path = self._new_path()
        self._write(path, name)
        self.files[path] = name

    def step(self) -> None:
        choice = self.rng.random()
        if not self.files or choice < 0.15:
            self.create()
            return
        path = self.rng.choice(sorted(self.files))
        name = self.files[path]
        if choice < 0.65:
            self._write(path, name)
        elif choice < 0.85:
            self.volatile.add(name)
            target = self._new_path()
            os.replace(path, target)
            self.files[target] = self.files.pop(path)
        else:
            self.volatile.add(name)
            path.unlink()
            del self.files[path]


async def store_view(store: AssetStore) -> dict[str, Any]:
    return {name: (await store.retrieve_card(name)).to_dict() for name in await store.asset_names()}


async def test_readers_see_no_errors_and_store_settles_on_folder_content(card_dir: Path) -> None:
    rng = random.Random(SEED)
    churn = Churn(card_dir, rng)
    (card_dir / "root.yaml").write_text("name: root\nfamily: stable\n")
    for _ in range(INITIAL_FILES):
        churn.create(during_run=False)
    store = AssetStore([FileAssetMetadataProvider(card_dir)])
    errors: list[BaseException] = []
    reads = 0
    writing = True

    async def read_forever(seed: int) -> None:
        nonlocal reads
        reader_rng = random.Random(seed)
        while writing:
            name = reader_rng.choice(churn.names)
            try:
                found = await store.retrieve_card(name)
                assert found.field("family").value == "stable"
                reads += 1
            except AssetCardNotFoundError:
                if name not in churn.volatile:
                    errors.append(AssertionError(f"{name} went missing, but was only edited"))
            except Exception as exc:
                errors.append(exc)
            await anyio.lowlevel.checkpoint()

    async def write() -> None:
        nonlocal writing
        try:
            for _ in range(OPERATIONS):
                churn.step()
                await anyio.sleep(rng.uniform(0, MAX_PAUSE))
        finally:
            writing = False

    async with store, store.watching():
        async with anyio.create_task_group() as tg:
            for i in range(READERS):
                tg.start_soon(read_forever, i)
            tg.start_soon(write)
        assert errors == []
        assert reads > OPERATIONS

        async def settled() -> bool:
            async with AssetStore([FileAssetMetadataProvider(card_dir)]) as fresh:
                return await store_view(store) == await store_view(fresh)

        await wait_until(settled, within=20)
        assert await store.asset_names() == {"root@", *(f"{n}@" for n in churn.files.values())}
        assert await store.check() == []

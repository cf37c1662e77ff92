"""The durable ceiling for bench/prefetch.py: the simplest fast, durable HTTP download.

One HEAD for the size, then ``streams`` ranged GETs (contiguous slices of equal size) in
parallel over aiohttp, one connection each; every chunk is written where it belongs with
``os.pwrite`` -- no journal, no hashing, no temporary name, no rename -- and the file gets
one ``fdatasync`` at the end. Whatever a real cache does on top (resume journal, checksums,
publication) can only cost time, so its throughput over this one is its efficiency.

Usage: ``python bench/ideal_client.py URL DEST [--streams 16]`` (prints seconds and MB/s).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time

import aiohttp

CHUNK = 1 << 20


async def _stream(session: aiohttp.ClientSession, url: str, fd: int, start: int, end: int) -> int:
    """Fetch bytes [start, end) and pwrite them at their offset; return how many."""
    offset = start
    headers = {"Range": f"bytes={start}-{end - 1}"}
    async with session.get(url, headers=headers) as resp:
        if resp.status != 206:
            raise RuntimeError(f"ranged GET answered {resp.status}, not 206")
        async for chunk in resp.content.iter_chunked(CHUNK):
            view = memoryview(chunk)
            while view:
                written = os.pwrite(fd, view, offset)
                offset += written
                view = view[written:]
    if offset != end:
        raise RuntimeError(f"range {start}-{end - 1} ended at {offset}")
    return offset - start


async def download(url: str, dest: str, streams: int = 16) -> int:
    """Download ``url`` to ``dest`` over ``streams`` ranged connections; return its size."""
    connector = aiohttp.TCPConnector(limit=streams, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.head(url) as resp:
            resp.raise_for_status()
            size = int(resp.headers["Content-Length"])
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, size)
            bounds = [size * i // streams for i in range(streams + 1)]
            done = await asyncio.gather(
                *(
                    _stream(session, url, fd, lo, hi)
                    for lo, hi in itertools.pairwise(bounds)
                    if hi > lo
                )
            )
            if sum(done) != size:
                raise RuntimeError(f"wrote {sum(done)} bytes, not {size}")
            os.fdatasync(fd)
        finally:
            os.close(fd)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("dest")
    parser.add_argument("--streams", type=int, default=16)
    opts = parser.parse_args()
    started = time.perf_counter()
    size = asyncio.run(download(opts.url, opts.dest, opts.streams))
    elapsed = time.perf_counter() - started
    print(f"{size} bytes in {elapsed:.3f} s: {size / elapsed / 1e6:.1f} MB/s")


if __name__ == "__main__":
    main()

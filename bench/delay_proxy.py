"""The benchmarks' far-away object store, as a process of its own: the tests' TCP proxy
(``CountingProxy`` of ``tests/servers.py``) holding each request ``--delay-ms`` and capping
each connection at ``--bandwidth-mb`` MB/s (real object stores give one connection about
50 MB/s).

``python bench/delay_proxy.py --target 127.0.0.1:9000 [--port 9001]`` prints
``proxy URL -> TARGET`` once it listens and serves until it is stopped. In a benchmark, use
``_harness.proxy_process`` (this, in a process that shares no GIL with the client) or
``_harness.CountingProxy(url, delay=..., bandwidth=...)`` (a thread of the caller).
Only loopback addresses are meant as targets.
"""

from __future__ import annotations

import argparse
import contextlib
import threading

from _harness import CountingProxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT (or a URL) to forward to")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--bandwidth-mb", type=float, default=50.0, help="MB/s per connection")
    args = parser.parse_args()
    proxy = CountingProxy(
        args.target, delay=args.delay_ms / 1000, bandwidth=args.bandwidth_mb * 1e6, port=args.port
    )
    with proxy, contextlib.suppress(KeyboardInterrupt):
        print(f"proxy {proxy.url} -> {args.target}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()

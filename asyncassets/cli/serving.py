"""``asyncassets serve``: the ASGI app (:mod:`asyncassets.asgi`) under uvicorn."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from asyncassets import AssetStore
from asyncassets.cli.output import say
from asyncassets.cli.reporting import UsageError
from asyncassets.loops import on_asyncio


async def cmd_serve(store: AssetStore, args: argparse.Namespace) -> int:
    """Run the ASGI app with uvicorn until SIGINT or SIGTERM."""
    try:
        import uvicorn

        from asyncassets.asgi import create_app
    except ImportError as exc:
        raise UsageError(
            f"serve needs the extra 'serve' ({exc}): pip install 'asyncassets[serve]'"
        ) from None
    if not on_asyncio():
        raise UsageError("serve runs on asyncio (uvicorn)")
    from asyncassets.asgi import LOCAL_HOSTS

    hosts = list(args.allowed_host or LOCAL_HOSTS)
    if not args.allowed_host and args.host not in ("0.0.0.0", "::", ""):
        hosts.append(f"[{args.host}]" if ":" in args.host else args.host)
    app = create_app(
        store,
        prefetch=args.prefetch,
        watch=not args.no_watch,
        field=args.field,
        allowed_hosts=hosts,
    )
    _Server = _server_class(app)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="debug" if args.verbose else "info",
        timeout_graceful_shutdown=5,
    )
    say(
        f"serving {len(store.providers_by_precedence())} store(s) on http://{args.host}:"
        f"{args.port}/ (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    await _Server(config).serve()
    return 0


def _server_class(app: Any) -> Any:
    import uvicorn

    from asyncassets.asgi import end_event_streams

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGINT / SIGTERM end it with status 0 (a graceful
        stop is a success, not a death by signal: uvicorn raises the signal again), and
        that open /events streams end as the shutdown starts (else it waits for them)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

        async def shutdown(self, sockets: Any = None) -> None:
            end_event_streams(app)
            await super().shutdown(sockets)

    return Server

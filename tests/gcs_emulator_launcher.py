"""Run gcp-storage-emulator in memory with a listen backlog that concurrency does not overflow.

The emulator serves with ``http.server.HTTPServer`` whose ``request_queue_size`` is 5: more
than five concurrent connections stall on SYN retries. Raise it before the server is made.

Usage: python gcs_emulator_launcher.py HOST PORT
"""

from __future__ import annotations

import logging
import socketserver
import sys
import time


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    socketserver.TCPServer.request_queue_size = 128
    from gcp_storage_emulator.server import create_server

    logging.basicConfig(level=logging.WARNING)
    server = create_server(host, port, in_memory=True)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

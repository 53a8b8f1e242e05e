"""A bare moto server on 127.0.0.1, for the API ratio's other side.

``python -m benchmarks.bare_moto PORT`` serves moto the way the sandbox's API does
(moto's ThreadedMotoServer: werkzeug, threaded, moto's request handler, werkzeug's
request log off), and nothing else, until SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading


def main(argv: list[str]) -> int:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = ThreadedMotoServer("127.0.0.1", int(argv[0]), verbose=False)
    server.start()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

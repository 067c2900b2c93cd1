"""`python -m tools.bench.stress.liveprobe URL INTERVAL_S TIMEOUT_S`: GET URL/health/live every
INTERVAL_S, one probe at a time, and print one line per probe: `<perf_counter when sent> <seconds>`.

A process of its own (stdlib only, quick to start), so that the load generator's event loop,
busy with a case's connections, neither delays the probe nor hides how long the server took.
perf_counter is the system's monotonic clock, so the parent reads the send times on its own clock.
A probe with no answer within TIMEOUT_S prints the time it waited.
"""

from __future__ import annotations

import http.client
import sys
import time
from urllib.parse import urlsplit


def probe(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/health/live")
    response = connection.getresponse()
    response.read()


def main() -> None:
    url, interval, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    while True:
        sent = time.perf_counter()
        try:
            probe(connection)
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnects on the next request
        elapsed = time.perf_counter() - sent
        print(f"{sent:.6f} {elapsed:.6f}", flush=True)
        time.sleep(max(0.0, interval - elapsed))


if __name__ == "__main__":
    main()

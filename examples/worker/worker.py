"""worker: a background process with no port; one line per interval."""
import os
import signal
import sys
import time

interval = float(os.environ.get("INTERVAL_SECONDS", "10"))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
n = 0
while True:
    n += 1
    print("heartbeat %d" % n, flush=True)
    time.sleep(interval)

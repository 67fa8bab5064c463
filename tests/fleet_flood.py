"""Peak memory of a door under a record flood (issue 23 item 5): prints figures, not timed.

    PYTHONPATH=app python -m tests.fleet_flood [--messages 2000] [--size 246000]

A door (the real replica and site link, a memory store) runs in a child process against a
mosquitto on a loopback port; this process floods the site's subject topics. The child's peak
RSS (VmHWM) is read before and after the flood.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from consentry.bus.broker import LocalMosquitto

CHILD = r"""
import sys, time, json
from consentry.config import MqttConfig
from consentry.bus.site_link import SiteLink
from consentry.fleet.identity import DoorIdentity
from consentry.fleet.replica import Replica
from consentry.fleet.simulate import MemoryDoor
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from consentry.fleet.records import public_bytes

site_public = public_bytes(Ed25519PrivateKey.generate().public_key())
ident = DoorIdentity("site-flood", site_public, DoorIdentity.create("x", b"").private_key, b"k" * 32)
replica = Replica(ident, MemoryDoor(), max_staleness=120, max_skew=30).start()
link = SiteLink(MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), device_id="door"), "flood-door",
                replica.topics, replica.offer, replica.on_link).start()
link.wait_connected(10)
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024
print(json.dumps({"ready": hwm()}), flush=True)
sys.stdin.readline()  # the flood is over
while replica._inbox.qsize():
    time.sleep(0.2)
time.sleep(1.0)
print(json.dumps({"peak_mb": hwm(), "dropped": getattr(replica, "dropped", 0)}), flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=246_000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        broker = LocalMosquitto(Path(work)).start()
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(broker.port)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            before = json.loads(child.stdout.readline())["ready"]
            sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood")
            sender.connect("127.0.0.1", broker.port)
            sender.loop_start()
            payload = b"x" * args.size
            for i in range(args.messages):
                sender.publish(f"consentry/site/site-flood/subject/s-{i:016x}", payload, qos=1).wait_for_publish(30)
            sender.disconnect()
            sender.loop_stop()
            time.sleep(1.0)
            child.stdin.write("\n")
            child.stdin.flush()
            after = json.loads(child.stdout.readline())
        finally:
            child.kill()
            child.wait()
            broker.stop()
    print(json.dumps({"messages": args.messages, "bytes_each": args.size, "door_rss_before_mb": before,
                      "door_peak_rss_mb": after["peak_mb"], "dropped": after["dropped"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

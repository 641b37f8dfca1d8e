#!/usr/bin/python3
"""Slow HTTP clients for tests/integration/api_slow.sh: N connections that
send a request line and then one header line every EVERY seconds, never
ending their headers (slowloris), or that send nothing at all (idle).

  slow_clients.py PORT COUNT SOURCES EVERY SECONDS [idle]

SOURCES is a comma-separated list of loopback addresses the connections
come from, in turn (127.0.0.2,127.0.0.3: two "clients"). Prints
"open N refused M" once every connection was tried (refused: the server
closed it at once or did not accept it within 2 s), then after SECONDS
(or, for idle, once the server has closed them all) one line of JSON:
{"open": connections still open at the end, "closed": the server closed
them, with "closed_after" the seconds each lasted}. Bounded: it stops by
itself after SECONDS (idle: SECONDS at most) and closes everything."""
import json, select, socket, sys, time

port, count, sources = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
every, seconds = float(sys.argv[4]), float(sys.argv[5])
idle = len(sys.argv) > 6 and sys.argv[6] == "idle"

start = time.monotonic()
conns = []  # [socket, opened_at, closed_after or None]
refused = 0
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((sources[i % len(sources)], 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        if not idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: dcem\r\n")
    except OSError:
        refused += 1
        s.close()
        continue
    s.setblocking(False)
    conns.append([s, time.monotonic(), None])

# a connection the server dropped at once (per-address limit) shows EOF soon
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    live = [c for c in conns if c[2] is None]
    r, _, _ = select.select([c[0] for c in live], [], [], 0.1)
    for c in live:
        if c[0] in r:
            try:
                data = c[0].recv(4096)
            except OSError:
                data = b""
            if not data:
                c[2] = time.monotonic() - c[1]
refused += sum(1 for c in conns if c[2] is not None)
conns = [c for c in conns if c[2] is None]
print(f"open {len(conns)} refused {refused}", flush=True)

n = 0
next_send = time.monotonic() + every
while time.monotonic() - start < seconds:
    live = [c for c in conns if c[2] is None]
    if idle and not live:
        break
    r, _, _ = select.select([c[0] for c in live], [], [], 0.1)
    for c in live:
        if c[0] in r:
            try:
                data = c[0].recv(4096)
            except OSError:
                data = b""
            if not data:
                c[2] = time.monotonic() - c[1]
    if not idle and time.monotonic() >= next_send:
        n += 1
        for c in conns:
            if c[2] is None:
                try:
                    c[0].send(f"X-Slow-{n}: {n}\r\n".encode())
                except OSError:
                    c[2] = time.monotonic() - c[1]
        next_send += every
closed = [round(c[2], 2) for c in conns if c[2] is not None]
print(json.dumps({"open": sum(1 for c in conns if c[2] is None), "closed": len(closed),
                  "closed_after": closed}), flush=True)
for c in conns:
    c[0].close()

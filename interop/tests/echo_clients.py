"""Clients of the echo server's shutdown test (tests/echo_server_shutdown.rs).

    python3 echo_clients.py ws://127.0.0.1:9001/ 1000

Opens that many Python `websockets` clients. Each keeps sending text and binary messages (a
few in flight at a time) and checks every echo byte for byte, in order. Once every client is
connected and has had its first echoes, it prints `READY` and keeps the traffic going; the
test then signals the server. Each client runs until the connection ends and records the close
code it received. At the end it prints one `RESULT key=value ...` line and exits 0 if every
client got 1001 and nothing was lost or changed, 1 otherwise. Every wait has a timeout.
"""

import asyncio
import collections
import random
import resource
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

IN_FLIGHT = 4  # messages a client may have sent without their echo yet
FIRST_ECHOES = 3  # echoes every client has before READY
CONNECTING = 64  # opening handshakes at a time
CONNECT_PHASE = 90.0  # seconds for every client to connect and echo
CLOSE_PHASE = 60.0  # seconds for every connection to end after READY


def raise_fd_limit(clients):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = clients + 256
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


TEXT = "".join(random.Random(0).choice("abcdefghijklmnopqrstuvwxyz 0123456789 é ü 漢 🦀") for _ in range(1 << 16))


def payload(rng, n):
    """Text on even turns, binary on odd ones, of sizes around the frame length encodings."""
    size = rng.choice((1, 7, 125, 126, 1000, 4096, 20000))
    if n % 2 == 0:
        start = rng.randrange(len(TEXT) - size)
        return TEXT[start : start + size]
    return rng.randbytes(size)


class Client:
    def __init__(self, index):
        self.index = index
        self.sent = 0
        self.echoed = 0
        self.mismatches = 0
        self.unexpected = 0
        self.code = None
        self.unechoed = 0
        self.error = None
        self.pending = collections.deque()
        self.first_echoes = asyncio.Event()

    async def run(self, url, connecting):
        rng = random.Random(self.index)
        try:
            async with connecting:
                ws = await connect(url, open_timeout=60, close_timeout=10, ping_interval=None, max_size=None)
        except Exception as e:  # noqa: BLE001 - reported, never raised
            self.error = f"connect: {e!r}"
            self.first_echoes.set()
            return
        window = asyncio.Semaphore(IN_FLIGHT)

        async def send():
            n = 0
            while True:
                await window.acquire()
                message = payload(rng, n)
                n += 1
                self.pending.append(message)
                self.sent += 1
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    self.pending.pop()  # refused before a byte was written
                    self.sent -= 1
                    return
                await asyncio.sleep(rng.uniform(0.05, 0.25))

        sender = asyncio.create_task(send())
        try:
            async for message in ws:
                if not self.pending:
                    self.unexpected += 1
                    continue
                expected = self.pending.popleft()
                if type(message) is not type(expected) or message != expected:
                    self.mismatches += 1
                self.echoed += 1
                if self.echoed >= FIRST_ECHOES:
                    self.first_echoes.set()
                window.release()
        except ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001
            self.error = f"receive: {e!r}"
        finally:
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, Exception):
                pass
            self.first_echoes.set()
        await ws.wait_closed()
        # The close frame the server sent (1006 when the connection ended without one).
        self.code = ws.close_code
        self.unechoed = len(self.pending)


async def main(url, count):
    raise_fd_limit(count)
    connecting = asyncio.Semaphore(CONNECTING)
    clients = [Client(i) for i in range(count)]
    started = time.monotonic()
    tasks = [asyncio.create_task(c.run(url, connecting)) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.first_echoes.wait() for c in clients)), CONNECT_PHASE)
    except asyncio.TimeoutError:
        pass
    ready = sum(1 for c in clients if c.echoed >= FIRST_ECHOES and c.code is None)
    print(f"READY clients={ready} in {time.monotonic() - started:.2f}s", flush=True)
    closing = time.monotonic()
    done, stuck = await asyncio.wait(tasks, timeout=CLOSE_PHASE)
    for task in stuck:
        task.cancel()
    closed_in = time.monotonic() - closing
    codes = collections.Counter(c.code for c in clients)
    result = {
        "clients": count,
        "ready": ready,
        "code1001": codes.get(1001, 0),
        "other_codes": ",".join(f"{k}:{v}" for k, v in sorted(codes.items(), key=str) if k != 1001) or "none",
        "sent": sum(c.sent for c in clients),
        "echoed": sum(c.echoed for c in clients),
        "unechoed": sum(c.unechoed for c in clients),
        "max_unechoed": max((c.unechoed for c in clients), default=0),
        "mismatches": sum(c.mismatches for c in clients),
        "unexpected": sum(c.unexpected for c in clients),
        "errors": sum(1 for c in clients if c.error),
        "stuck": len(stuck),
        "closed_in": f"{closed_in:.2f}s",
    }
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    for c in clients:
        if c.error:
            print(f"client {c.index}: {c.error}", file=sys.stderr)
            break
    ok = (
        ready == count
        and result["code1001"] == count
        and result["mismatches"] == 0
        and result["unexpected"] == 0
        and result["errors"] == 0
        and result["stuck"] == 0
        and result["max_unechoed"] <= IN_FLIGHT
        and result["sent"] == result["echoed"] + result["unechoed"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))

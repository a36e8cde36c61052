"""Clients of the echo server's load test (tests/echo_server_load.rs).

    python3 load_clients.py ws://127.0.0.1:9001/ 500 8 [large]

Opens that many Python `websockets` clients, permessage-deflate with context takeover both
ways (websockets' default offer; the test checks that it was negotiated). Each sends that many
messages one at a time, of mixed sizes (0 B to 300 KiB, text and binary, one in four
fragmented), checks every echo byte for byte, and pauses between messages: while it is idle the
others send, so the server's compression states (4 of each kind in its pool, against hundreds
of connections) go to other connections and its next message is compressed and inflated with
a rebuilt state, primed from the connection's history. Then it closes with 1000.

Prints one `RESULT key=value ...` line and exits 0 if every echo matched and every connection
closed cleanly, 1 otherwise. Every wait has a timeout.

With `large`, the sizes are 64 KiB to 4 MiB and the pauses short: a burst of large messages
(the memory measurement of tests/echo_server_load.rs).
"""

import asyncio
import random
import resource
import sys
import time

from websockets.asyncio.client import connect

CONNECTING = 64  # opening handshakes at a time
SIZES = (0, 1, 7, 125, 126, 1000, 4096, 20000, 65535, 65536, 100_000, 300_000)
PAUSE = (0.3, 1.2)  # seconds idle between two messages
LARGE_SIZES = (65536, 300_000, 1_000_000, 4_000_000)
LARGE_PAUSE = (0.0, 0.1)
DEADLINE = 150.0  # seconds for the whole run

WORDS = "socket frame deflate window echo ping close mask payload é ü 漢 🦀 server client history pool".split()
_WORDS_RNG = random.Random(0)
TEXT = " ".join(_WORDS_RNG.choice(WORDS) for _ in range(1_000_000))  # about 5.4 million characters


def raise_fd_limit(clients):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = clients + 256
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def payload(rng, n, sizes):
    """Text on even turns, binary on odd ones; compressible (words) or not (random bytes)."""
    size = rng.choice(sizes)
    if n % 2 == 0:
        start = rng.randrange(len(TEXT) - size)
        return TEXT[start : start + size]
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return bytes(rng.choice(b"abcdefgh ") for _ in range(min(size, 4096))) * (size // 4096 + 1)


def fragments(message, parts):
    step = max(1, -(-len(message) // parts))
    return [message[i : i + step] for i in range(0, len(message), step)] or [message]


class Client:
    def __init__(self, index):
        self.index = index
        self.sent = 0
        self.fragmented = 0
        self.echoed = 0
        self.bytes = 0
        self.mismatches = 0
        self.compressed = False
        self.code = None
        self.error = None

    async def run(self, url, count, connecting, sizes, pause):
        rng = random.Random(self.index)
        try:
            async with connecting:
                ws = await connect(url, open_timeout=60, close_timeout=10, ping_interval=None, max_size=None)
        except Exception as e:  # noqa: BLE001 - reported, never raised
            self.error = f"connect: {e!r}"
            return
        try:
            self.compressed = any(
                e.name == "permessage-deflate"
                and not e.local_no_context_takeover
                and not e.remote_no_context_takeover
                for e in ws.protocol.extensions
            )
            await asyncio.sleep(rng.uniform(*pause))
            for n in range(count):
                message = payload(rng, n, sizes)
                if len(message) > 1 and n % 4 == 3:
                    self.fragmented += 1
                    await ws.send(fragments(message, rng.choice((2, 3, 7))))
                else:
                    await ws.send(message)
                self.sent += 1
                echo = await asyncio.wait_for(ws.recv(), 60)
                if type(echo) is not type(message) or echo != message:
                    self.mismatches += 1
                self.echoed += 1
                self.bytes += len(message)
                await asyncio.sleep(rng.uniform(*pause))
            await ws.close(1000)
            self.code = ws.close_code
        except Exception as e:  # noqa: BLE001
            self.error = f"message {self.sent}: {e!r}"
            await ws.close()


async def main(url, count, messages, large):
    raise_fd_limit(count)
    connecting = asyncio.Semaphore(CONNECTING)
    clients = [Client(i) for i in range(count)]
    started = time.monotonic()
    sizes, pause = (LARGE_SIZES, LARGE_PAUSE) if large else (SIZES, PAUSE)
    tasks = [asyncio.create_task(c.run(url, messages, connecting, sizes, pause)) for c in clients]
    done, stuck = await asyncio.wait(tasks, timeout=DEADLINE)
    for task in stuck:
        task.cancel()
    result = {
        "clients": count,
        "compressed": sum(1 for c in clients if c.compressed),
        "sent": sum(c.sent for c in clients),
        "fragmented": sum(c.fragmented for c in clients),
        "echoed": sum(c.echoed for c in clients),
        "bytes": sum(c.bytes for c in clients),
        "mismatches": sum(c.mismatches for c in clients),
        "code1000": sum(1 for c in clients if c.code == 1000),
        "errors": sum(1 for c in clients if c.error),
        "stuck": len(stuck),
        "took": f"{time.monotonic() - started:.2f}s",
    }
    for c in clients:
        if c.error:
            print(f"client {c.index}: {c.error}", file=sys.stderr, flush=True)
            break
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    ok = (
        result["compressed"] == count
        and result["echoed"] == count * messages
        and result["mismatches"] == 0
        and result["code1000"] == count
        and result["errors"] == 0
        and result["stuck"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    large = len(sys.argv) > 4 and sys.argv[4] == "large"
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), large)))

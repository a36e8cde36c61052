#!/usr/bin/env python3
"""RSS per idle connection of a Python `websockets` echo server (for bench/RESULTS.md).

    python3 bench/scripts/python_websockets_memory.py [N1 N2]

Starts the server (websockets' asyncio implementation, default settings: permessage-deflate
with server_max_window_bits=12 and memLevel 5 when compression is on) in its own process,
opens N1 then N2 connections from this process, each echoing one 16 B JSON text message,
and prints the server's RSS slope between the two counts, as wsbench's memory section does
("after 64 KiB each way": each connection echoes 4 messages of 16 KiB of chat JSON instead).
Variants: no compression; compression with a client offering plain `permessage-deflate`
(as wsbench's client does: the server inflates with a 15-bit window); compression with
websockets' own client offer (`client_max_window_bits`, which the server answers with 12).
"""
import asyncio
import os
import subprocess
import sys
import time

SERVER = r'''
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    compression = None if sys.argv[1] == "none" else "deflate"
    async with serve(echo, "127.0.0.1", 0, compression=compression, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
'''


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def warm_messages():
    """4 text messages of about 16 KiB of chat-like JSON (64 KiB each way, as wsbench's warm variants)."""
    import json
    import random
    rng = random.Random(12345)
    words = "the a to and is it of in for on deploy build test merge review lunch ok thanks server client bug fix".split()
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    out = []
    i = 0
    for _ in range(4):
        items = []
        size = 2
        while True:
            u = rng.choice(users)
            item = json.dumps({"type": "message", "id": f"m{i:06}", "room": "general",
                               "user": {"id": 1000 + users.index(u), "name": u,
                                        "avatar": f"https://cdn.example.com/avatars/{u}.png"},
                               "text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 32))),
                               "ts": 1764489600000 + i * 1000, "edited": False, "reply_to": None},
                              separators=(",", ":"))
            if size + len(item) + 1 >= 16 << 10:
                break
            items.append(item)
            size += len(item) + 1
            i += 1
        out.append("[" + ",".join(items) + "]")
    return out


WARM = None


async def open_conns(port, n, variant, conns):
    from websockets.asyncio.client import connect
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    message = '{"id":1,"a":"b"}'
    assert len(message) == 16
    warm = variant.endswith("-warm")
    variant = variant.removesuffix("-warm")
    for _ in range(n):
        if variant == "none":
            ws = await connect(f"ws://127.0.0.1:{port}", compression=None)
        elif variant == "plain":
            factory = ClientPerMessageDeflateFactory(client_max_window_bits=None)
            ws = await connect(f"ws://127.0.0.1:{port}", compression=None, extensions=[factory])
        else:
            ws = await connect(f"ws://127.0.0.1:{port}")
        for m in WARM if warm else [message]:
            await ws.send(m)
            assert await ws.recv() == m
        if variant != "none":
            assert ws.response.headers.get("Sec-WebSocket-Extensions", "").startswith("permessage-deflate")
        conns.append(ws)


async def measure(variant, n1, n2):
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, "none" if variant.startswith("none") else "deflate"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    port = int(server.stdout.readline())
    conns = []
    await open_conns(port, n1, variant, conns)
    await asyncio.sleep(0.3)
    r1 = rss_kib(server.pid)
    await open_conns(port, n2 - n1, variant, conns)
    await asyncio.sleep(0.3)
    r2 = rss_kib(server.pid)
    for ws in conns:
        ws.transport.abort()
    server.stdin.close()
    server.wait()
    return r1, r2, (r2 - r1) * 1024 / (n2 - n1)


def main():
    import websockets
    global WARM
    WARM = warm_messages()
    n1, n2 = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (500, 2500)
    print(f"websockets {websockets.__version__}, Python {sys.version.split()[0]}, {n1} -> {n2} connections")
    for variant, label in [
        ("none", "no compression"),
        ("plain", "permessage-deflate, client offers plain `permessage-deflate`"),
        ("default", "permessage-deflate, websockets client offer (client_max_window_bits)"),
        ("none-warm", "no compression, after 64 KiB each way"),
        ("plain-warm", "permessage-deflate, client offers plain `permessage-deflate`, after 64 KiB each way"),
    ]:
        r1, r2, slope = asyncio.run(measure(variant, n1, n2))
        print(f"| Python websockets, {label} | {slope:.0f} B ({slope / 1024:.2f} KiB) | {r1} KiB @ {n1}, {r2} KiB @ {n2} |")


if __name__ == "__main__":
    main()

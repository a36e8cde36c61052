"""The peer of tests/python_server.rs: a Python `websockets` echo server.

    python3 python_echo_server.py

Listens on a free port of 127.0.0.1 with permessage-deflate (zlib, its defaults) and messages
up to 64 MiB, prints `LISTENING <port>`, and echoes every message of every connection as it
came (text as text, binary as binary). For each connection it prints `EXTENSIONS <header>`
(what it agreed to). Runs until killed (the test's guard), or 300 s.
"""

import asyncio

from websockets.asyncio.server import serve


async def echo(ws):
    agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "none")
    print(f"EXTENSIONS {agreed}", flush=True)
    async for message in ws:
        await ws.send(message)


async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=64 << 20, compression="deflate") as server:
        port = server.sockets[0].getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        await asyncio.sleep(300)


if __name__ == "__main__":
    asyncio.run(main())

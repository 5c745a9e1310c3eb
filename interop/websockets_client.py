"""Python `websockets` as a client of a wsengine echo server.

Usage: websockets_client.py URL

Connects with compression (websockets offers permessage-deflate by default), checks that the
server agreed to it, sends text and binary messages from 1 B to 1 MiB and checks each echo.
Exits non-zero on any failure.
"""
import os
import sys

from websockets.sync.client import connect

SIZES = [1, 125, 126, 1000, 65535, 65536, 300_000, 1 << 20]


def main():
    url = sys.argv[1]
    with connect(url, compression="deflate", max_size=None, open_timeout=10, close_timeout=10) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        print(f"websockets client: connected to {url}; extensions: {extensions}")
        if "permessage-deflate" not in extensions:
            sys.exit(f"websockets client: FAILED: permessage-deflate not negotiated ({extensions!r})")
        count = 0
        for size in SIZES:
            text = ("wsengine interop ✓ " * (size // 10 + 1)).encode()[:size].decode("utf-8", "ignore")
            text += "x" * (size - len(text.encode()))
            data = os.urandom(size // 2) + bytes(size - size // 2)
            for message in (text, data):
                ws.send(message)
                echo = ws.recv(timeout=30)
                if echo != message:
                    sys.exit(f"websockets client: FAILED: echo of {type(message).__name__} of {size} bytes differs")
                count += 1
    print(f"websockets client: OK: {count} messages of 1 B to 1 MiB echoed intact")


if __name__ == "__main__":
    main()

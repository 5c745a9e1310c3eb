"""Python `websockets` as an echo server for wsengine's client.

Usage: websockets_server.py PORT

Serves on 127.0.0.1:PORT with compression on (the default) until killed.
"""
import sys

from websockets.sync.server import serve


def echo(ws):
    for message in ws:
        ws.send(message)


def main():
    port = int(sys.argv[1])
    with serve(echo, "127.0.0.1", port, compression="deflate", max_size=None) as server:
        print(f"websockets server: listening on 127.0.0.1:{port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

"""Tank text protocol against a hub, with Python `websockets` as the client. The server
publishes "from server" to `news` once two connections are subscribed.

Usage: tank_client.py ws://127.0.0.1:PORT   (exits non-zero on any mismatch)
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), 10)


async def main(base):
    async with connect(base + "/tank?user_id=py1") as one, connect(base + "/tank?user_id=py2") as two:
        await one.send(json.dumps({"type": "heartbeat"}))
        await one.send("sub:news")
        await two.send("sub:news")
        expected = {"topic": "news", "data": "from server"}
        assert json.loads(await recv(one)) == expected
        assert json.loads(await recv(two)) == expected
        await one.send("hello from one")
        assert await recv(two) == "hello from one"
        await two.send("unsub:news")
        await two.send("hello from two")
        assert await recv(one) == "hello from two"
    print("OK")


asyncio.run(main(sys.argv[1]))

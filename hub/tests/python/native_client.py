"""Native JSON protocol against a hub, with Python `websockets` as the client.

Usage: native_client.py ws://127.0.0.1:PORT   (exits non-zero on any mismatch)
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def main(base):
    async with connect(base + "/ws?user_id=ann") as ann, connect(base + "/ws?user_id=bob") as bob:
        await ann.send(json.dumps({"action": "subscribe", "channel": "presence-py", "ref": 1}))
        assert await recv(ann) == {"type": "subscribed", "channel": "presence-py", "ref": 1}
        listing = await recv(ann)
        assert listing["event"] == "list" and listing["users"] == ["ann"], listing

        await bob.send(json.dumps({"action": "subscribe", "channel": "presence-py"}))
        assert (await recv(bob))["type"] == "subscribed"
        assert (await recv(bob))["users"] == ["ann", "bob"]
        join = await recv(ann)
        assert join == {"type": "presence", "channel": "presence-py", "event": "join", "user_id": "bob"}, join

        await bob.send(json.dumps({"action": "broadcast", "channel": "presence-py", "event": "chat", "data": {"text": "hi"}}))
        message = await recv(ann)
        assert message == {"type": "message", "channel": "presence-py", "event": "chat", "data": {"text": "hi"}, "from": "bob"}, message

        await bob.send(json.dumps({"action": "whisper", "channel": "presence-py", "event": "typing", "data": True, "ref": "w"}))
        assert await recv(bob) == {"type": "ack", "ref": "w"}
        whisper = await recv(ann)
        assert whisper == {"type": "whisper", "channel": "presence-py", "from": "bob", "event": "typing", "data": True}, whisper

        await ann.send("{broken")
        assert (await recv(ann))["code"] == "bad_request"
        await ann.send(json.dumps({"action": "ping", "ref": "p"}))
        assert await recv(ann) == {"type": "pong", "ref": "p"}

        await bob.close()
        leave = await recv(ann)
        assert leave == {"type": "presence", "channel": "presence-py", "event": "leave", "user_id": "bob"}, leave
    print("OK")


asyncio.run(main(sys.argv[1]))

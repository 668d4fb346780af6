"""The bare relay the gateway is measured against: no auth, validation or storage.

A plain FastAPI WebSocket endpoint that forwards each frame a publisher sends to every
subscriber, served by uvicorn with the same WebSocket implementation and limits as the
gateway (see `gateway/server.py`). Run as its own process by `bench/gateway.py`; prints
`{"port": N}` on stdout once it listens.

    python bench/relay.py [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def create_relay_app() -> FastAPI:
    app = FastAPI()
    subscribers: set[WebSocket] = set()

    @app.websocket("/ws")
    async def relay(ws: WebSocket) -> None:
        await ws.accept()
        publisher = ws.query_params.get("role") == "pub"
        if not publisher:
            subscribers.add(ws)
        try:
            while True:
                text = await ws.receive_text()
                if publisher:
                    # The plainest relay: await each subscriber in turn.
                    for sub in tuple(subscribers):
                        try:
                            await sub.send_text(text)
                        except Exception:  # that subscriber is gone; the others go on
                            subscribers.discard(sub)
                # A subscriber's acks are read and dropped, so both targets read them.
        except WebSocketDisconnect:
            pass
        finally:
            subscribers.discard(ws)

    return app


async def serve(port: int) -> None:
    config = uvicorn.Config(
        create_relay_app(),
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        # The gateway's defaults (GatewaySettings): 1 MiB frames, ping every 10 s.
        ws_max_size=1 << 20,
        ws_ping_interval=10.0,
        ws_ping_timeout=10.0,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"port": bound}) + "\n")
    sys.stdout.flush()
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()

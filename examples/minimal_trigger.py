"""A complete trigger: publish one signal to the ATS gateway and wait for its ack.

Needs Python 3.10+ and the `websockets` package (pip install "websockets>=14").
  ATS_GATEWAY_URL    default ws://127.0.0.1:8000/ws/events
  ATS_TRIGGER_TOKEN  the token the gateway returned when the trigger was created
Prints the event's seq and exits 0 once the gateway has stored the signal; exits 1
with the reason when the gateway rejects the signal or closes the connection.
"""

# ruff: noqa: T201  (a command-line example talks to its user with print)

import asyncio
import json
import os
import sys
import uuid

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def publish_one_signal(url: str, token: str) -> int:
    signal = {
        "kind": "event",
        "category": "signal",
        # Our own id makes a resend after a lost ack safe: the gateway stores it once.
        "id": str(uuid.uuid4()),
        "title": "RSI(14) crossed below 30 on BTC/USDT 5m",
        "payload": {
            "symbol": "BTC/USDT",
            "timeframe": "5m",
            "direction": "long",
            "strength": 0.8,
            "rsi": 28.4,
        },
    }
    # A header keeps the token out of URLs, which proxies and servers tend to log.
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with connect(url, additional_headers=headers) as ws:
            hello = json.loads(await ws.recv())
            print(f"connected as {hello['client_id']}", file=sys.stderr)
            await ws.send(json.dumps(signal))
            async for raw in ws:
                frame = json.loads(raw)
                # Anything else (a config_update event, say) is not what we wait for.
                if frame["kind"] != "ack" or frame.get("id") != signal["id"]:
                    continue
                if not frame["ok"]:
                    print(f"rejected: {frame['message']}: {frame['detail']}", file=sys.stderr)
                    return 1
                print(frame["seq"])
                return 0
    except ConnectionClosed as e:
        code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, "no close frame")
        print(f"connection closed: {code} {reason}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cannot reach the gateway at {url}: {e}", file=sys.stderr)
        return 1
    print("connection closed before the signal was acknowledged", file=sys.stderr)
    return 1


def main() -> int:
    url = os.environ.get("ATS_GATEWAY_URL", "ws://127.0.0.1:8000/ws/events")
    token = os.environ.get("ATS_TRIGGER_TOKEN")
    if not token:
        print("set ATS_TRIGGER_TOKEN to the trigger's token", file=sys.stderr)
        return 2
    return asyncio.run(publish_one_signal(url, token))


if __name__ == "__main__":
    sys.exit(main())

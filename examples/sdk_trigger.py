"""A custom trigger written with the ATS SDK: publish two signals, print their seqs.

Run it from the repository, in its virtualenv (it imports `shared`):
  ATS_TRIGGER_TOKEN=ats_trg_... .venv/bin/python examples/sdk_trigger.py
ATS_GATEWAY_URL defaults to ws://127.0.0.1:8000/ws/events. Prints one line per signal,
`SEQ stored` (or `SEQ duplicate` when it was published before), and exits 0.
"""

# ruff: noqa: T201  (a command-line example talks to its user with print)

import asyncio
import uuid

from shared.config import ClientSettings
from shared.logging import configure_logging
from shared.sdk import GatewayClient

SIGNALS = [("ETH/BTC", "long", 28.4), ("LTC/BTC", "short", 73.9)]


async def main() -> None:
    settings = ClientSettings()  # reads ATS_TRIGGER_TOKEN, ATS_GATEWAY_URL, ATS_LOG_*
    if settings.trigger_token is None:
        raise SystemExit("set ATS_TRIGGER_TOKEN to the token the gateway issued for this trigger")
    configure_logging(level=settings.log_level, json=settings.log_json)  # to stderr
    async with GatewayClient(settings.gateway_url, token=settings.trigger_token) as client:
        for symbol, direction, rsi in SIGNALS:
            # An id derived from what was seen: a rerun is answered "duplicate", not stored twice.
            signal_id = uuid.uuid5(uuid.NAMESPACE_URL, f"sdk-example/{symbol}/5m/2018-01-10T05:00Z")
            result = await client.publish(
                "signal",
                {"symbol": symbol, "timeframe": "5m", "direction": direction, "rsi_14": rsi},
                id=signal_id,
                title=f"RSI(14) at {rsi} on {symbol} 5m",
            )
            print(result.seq, "duplicate" if result.duplicate else "stored")


if __name__ == "__main__":
    asyncio.run(main())

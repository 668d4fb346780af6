"""The async client SDK every service uses to talk to the gateway.

Example::

    from shared.sdk import GatewayClient

    async with GatewayClient(token=token) as client:
        @client.on("signal")
        async def on_signal(event: SignalEvent) -> None:
            await client.publish("decision", {...})

        result = await client.publish("signal", {"symbol": "BTC/USDT", "direction": "long"})
"""

from shared.sdk.client import ALL, ClientStats, GatewayClient, Handler, PublishResult
from shared.sdk.errors import (
    AckTimeout,
    AuthenticationError,
    BadJson,
    ClientClosed,
    ForbiddenEvent,
    GatewayError,
    InvalidEvent,
    ProtocolError,
    PublishRejected,
    RateLimited,
    TooLarge,
    Unavailable,
)

__all__ = [
    "ALL",
    "AckTimeout",
    "AuthenticationError",
    "BadJson",
    "ClientClosed",
    "ClientStats",
    "ForbiddenEvent",
    "GatewayClient",
    "GatewayError",
    "Handler",
    "InvalidEvent",
    "ProtocolError",
    "PublishRejected",
    "PublishResult",
    "RateLimited",
    "TooLarge",
    "Unavailable",
]

"""The fake Binance checks requests the way Binance documents it, independently of ccxt.

The signed examples are the ones in Binance's API docs ("SIGNED endpoint examples
for POST /api/v3/order"): their key, secret, parameters and signatures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fakes.binance import FakeBinance

DOCS_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOCS_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
SIGNED_ALL_IN_BODY = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
SIGNED_QUERY_AND_BODY = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def client() -> AsyncIterator[tuple[FakeBinance, httpx.AsyncClient]]:
    async with (
        FakeBinance(api_key=DOCS_KEY, secret=DOCS_SECRET) as binance,
        httpx.AsyncClient(base_url=binance.url) as http,
    ):
        yield binance, http


async def post(
    http: httpx.AsyncClient, *, query: str = "", body: str, key: str | None = DOCS_KEY
) -> httpx.Response:
    headers = FORM | ({"X-MBX-APIKEY": key} if key is not None else {})
    return await http.post(f"/api/v3/order?{query}", content=body, headers=headers)


async def test_fake_binance_accepts_the_docs_signatures(
    client: tuple[FakeBinance, httpx.AsyncClient],
) -> None:
    _, http = client
    all_in_body = await post(http, body=f"{QUERY}&{BODY}&signature={SIGNED_ALL_IN_BODY}")
    split = await post(http, query=QUERY, body=f"{BODY}&signature={SIGNED_QUERY_AND_BODY}")

    # The signatures pass; the docs' 2017 timestamp is then outside the recvWindow.
    for answer in (all_in_body, split):
        assert answer.status_code == 400
        assert answer.json() == {
            "code": -1021,
            "msg": "Timestamp for this request is outside of the recvWindow.",
        }


async def test_fake_binance_refuses_bad_signatures_and_keys(
    client: tuple[FakeBinance, httpx.AsyncClient],
) -> None:
    binance, http = client
    tampered = await post(http, body=f"{QUERY}&{BODY}&signature={SIGNED_QUERY_AND_BODY}")
    no_key = await post(http, body=f"{QUERY}&{BODY}&signature={SIGNED_ALL_IN_BODY}", key=None)
    wrong_key = await post(
        http, body=f"{QUERY}&{BODY}&signature={SIGNED_ALL_IN_BODY}", key="someone-else"
    )

    assert (tampered.status_code, tampered.json()["code"]) == (400, -1022)
    assert (no_key.status_code, no_key.json()["code"]) == (401, -2014)
    assert (wrong_key.status_code, wrong_key.json()["code"]) == (401, -2015)
    assert binance.orders == []


async def test_fake_binance_rate_limits_with_binance_body_and_retry_after(
    client: tuple[FakeBinance, httpx.AsyncClient],
) -> None:
    binance, http = client
    binance.rate_limit_next(1, retry_after=3)

    limited = await http.get("/api/v3/ping")
    after = await http.get("/api/v3/ping")

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json()["code"] == -1003
    assert (after.status_code, after.json()) == (200, {})

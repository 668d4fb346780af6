// A complete trigger: publish one signal to the ATS gateway and wait for its ack.
//
// Needs Node 18+ and the `ws` package (npm install).
//   ATS_GATEWAY_URL    default ws://127.0.0.1:8000/ws/events
//   ATS_TRIGGER_TOKEN  the token the gateway returned when the trigger was created
// Prints the event's seq and exits 0 once the gateway has stored the signal; exits 1
// with the reason when the gateway rejects the signal or closes the connection.

import { randomUUID } from "node:crypto";
import WebSocket from "ws";

const url = process.env.ATS_GATEWAY_URL || "ws://127.0.0.1:8000/ws/events";
const token = process.env.ATS_TRIGGER_TOKEN;
if (!token) {
  console.error("set ATS_TRIGGER_TOKEN to the trigger's token");
  process.exit(2);
}

const signal = {
  kind: "event",
  category: "signal",
  // Our own id makes a resend after a lost ack safe: the gateway stores it once.
  id: randomUUID(),
  title: "RSI(14) crossed below 30 on BTC/USDT 5m",
  payload: {
    symbol: "BTC/USDT",
    timeframe: "5m",
    direction: "long",
    strength: 0.8,
    rsi: 28.4,
  },
};

let finished = false;
function finish(exitCode, message, stream = console.error) {
  if (finished) return;
  finished = true;
  stream(message);
  process.exitCode = exitCode;
  ws.close();
}

// A header keeps the token out of URLs, which proxies and servers tend to log.
const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });

ws.on("message", (data) => {
  const frame = JSON.parse(data.toString());
  if (frame.kind !== "ack") return; // a config_update event, say: not what we wait for
  if (frame.message === "connected") {
    console.error(`connected as ${frame.client_id}`);
    ws.send(JSON.stringify(signal));
    return;
  }
  if (frame.id !== signal.id) return;
  if (!frame.ok) {
    finish(1, `rejected: ${frame.message}: ${JSON.stringify(frame.detail)}`);
    return;
  }
  finish(0, String(frame.seq), console.log);
});

ws.on("close", (code, reason) => {
  finish(1, `connection closed: ${code} ${reason.toString() || "no reason"}`);
});

ws.on("error", (err) => {
  finish(1, `cannot reach the gateway at ${url}: ${err.message}`);
});

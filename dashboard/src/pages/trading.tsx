// Orders and positions: open positions, order history, rejected intents, incidents
// to acknowledge, and a symbol's candles with a group's entries and exits.
import { useState } from "preact/hooks";
import {
  api,
  get,
  type Candle,
  type EventFrame,
  type Incident,
  type Intent,
  type Order,
  type Page,
  type Position,
  type TradingGroup,
} from "../api";
import { CandleChart, type Marker } from "../charts";
import { dec, sign, time } from "../format";
import { Badge, Field, InlineError, Section, showError, useLoad } from "../ui";

function Positions() {
  const { data, error } = useLoad(() => get<Position[]>("/positions"), [], 5000);
  return (
    <Section title="Open positions" id="positions">
      <InlineError error={error} />
      <table>
        <thead>
          <tr>
            <th>account</th>
            <th>symbol</th>
            <th>group</th>
            <th>quantity</th>
            <th>avg price</th>
            <th>mark</th>
            <th>unrealized PnL</th>
            <th>realized PnL</th>
            <th>opened</th>
          </tr>
        </thead>
        <tbody>
          {data?.map((p) => (
            <tr key={p.account + p.symbol}>
              <td>{p.account}</td>
              <td>{p.symbol}</td>
              <td>{p.trading_group ?? "—"}</td>
              <td>{dec(p.quantity)}</td>
              <td>{dec(p.average_price)}</td>
              <td>{dec(p.mark_price)}</td>
              <td class={sign(p.unrealized_pnl)}>{dec(p.unrealized_pnl)}</td>
              <td class={sign(p.realized_pnl)}>{dec(p.realized_pnl)}</td>
              <td>{time(p.opened_at)}</td>
            </tr>
          ))}
          {data && !data.length && (
            <tr>
              <td colSpan={9} class="muted">
                No open positions.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Section>
  );
}

function Orders() {
  const [status, setStatus] = useState("");
  const { data, error } = useLoad(
    () => get<Page<Order>>("/orders", { order: "desc", limit: 100, status }),
    [status],
    5000,
  );
  return (
    <Section
      title="Orders"
      id="orders"
      actions={
        <select value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)} aria-label="order status">
          {["", "submitted", "accepted", "partially_filled", "filled", "canceled", "rejected", "denied", "expired", "ambiguous"].map((s) => (
            <option key={s} value={s}>
              {s || "any status"}
            </option>
          ))}
        </select>
      }
    >
      <InlineError error={error} />
      <table>
        <thead>
          <tr>
            <th>created</th>
            <th>account</th>
            <th>group</th>
            <th>symbol</th>
            <th>side</th>
            <th>type / leg</th>
            <th>status</th>
            <th>qty</th>
            <th>filled</th>
            <th>avg price</th>
            <th>fees</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((o) => (
            <tr
              key={o.id}
              class={o.correlation_id ? "clickable" : ""}
              onClick={() => o.correlation_id && (location.hash = `#/chain/${encodeURIComponent(o.correlation_id)}`)}
            >
              <td>{time(o.created_at)}</td>
              <td>{o.account}</td>
              <td>{o.trading_group ?? "—"}</td>
              <td>{o.symbol}</td>
              <td>{o.side}</td>
              <td>
                {o.type} / {o.leg}
              </td>
              <td>
                <Badge kind={o.status} title={o.reason ?? undefined}>
                  {o.status}
                </Badge>
              </td>
              <td>{dec(o.quantity)}</td>
              <td>{dec(o.filled_quantity)}</td>
              <td>{dec(o.average_price)}</td>
              <td>{dec(o.fees)}</td>
            </tr>
          ))}
          {data && !data.items.length && (
            <tr>
              <td colSpan={11} class="muted">
                No orders.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Section>
  );
}

function RejectedIntents() {
  const { data, error } = useLoad(
    () => get<Page<Intent, string>>("/intents", { status: "rejected", order: "desc", limit: 50 }),
    [],
    10000,
  );
  return (
    <Section title="Rejected intents" id="rejected-intents">
      <InlineError error={error} />
      <table>
        <thead>
          <tr>
            <th>when</th>
            <th>account</th>
            <th>group</th>
            <th>symbol</th>
            <th>action</th>
            <th>risk reason</th>
            <th>message</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((i) => (
            <tr key={i.id}>
              <td>{time(i.created_at)}</td>
              <td>{i.account}</td>
              <td>{i.trading_group}</td>
              <td>{i.symbol}</td>
              <td>{i.action}</td>
              <td>
                <Badge kind="bad">{i.reason ?? "—"}</Badge>
              </td>
              <td>{i.message}</td>
            </tr>
          ))}
          {data && !data.items.length && (
            <tr>
              <td colSpan={7} class="muted">
                No rejected intents.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Section>
  );
}

function Incidents() {
  const { data, error, reload } = useLoad(() => get<Page<Incident>>("/incidents", { order: "desc", limit: 50 }), [], 10000);
  const [notes, setNotes] = useState<Record<number, string>>({});
  const [failed, setFailed] = useState<Record<number, unknown>>({});
  async function acknowledge(incident: Incident) {
    try {
      await api("POST", `/incidents/${incident.id}/acknowledge`, { note: notes[incident.id] ?? "" });
      setFailed((f) => ({ ...f, [incident.id]: null }));
      await reload();
    } catch (e) {
      setFailed((f) => ({ ...f, [incident.id]: e }));
      showError(e);
    }
  }
  return (
    <Section title="Incidents" id="incidents">
      <InlineError error={error} />
      <table>
        <thead>
          <tr>
            <th>opened</th>
            <th>account</th>
            <th>kind</th>
            <th>status</th>
            <th>message</th>
            <th>action</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((i) => (
            <tr key={i.id} data-testid={`incident-${i.id}`}>
              <td>{time(i.created_at)}</td>
              <td>{i.account}</td>
              <td>{i.kind}</td>
              <td>
                <Badge kind={i.status === "open" ? "bad" : "muted"}>{i.status}</Badge>
              </td>
              <td>{i.message}</td>
              <td>
                {i.status === "open" ? (
                  <div class="row">
                    <input
                      placeholder="what you found or did"
                      aria-label="note"
                      value={notes[i.id] ?? ""}
                      onInput={(e) => setNotes((n) => ({ ...n, [i.id]: (e.target as HTMLInputElement).value }))}
                    />
                    <button onClick={() => acknowledge(i)}>Acknowledge</button>
                    <InlineError error={failed[i.id]} />
                  </div>
                ) : (
                  <span class="muted">
                    {time(i.closed_at)} · {i.closed_note}
                  </span>
                )}
              </td>
            </tr>
          ))}
          {data && !data.items.length && (
            <tr>
              <td colSpan={6} class="muted">
                No incidents.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Section>
  );
}

interface GroupChart {
  candles: Candle[];
  markers: Marker[];
}

/** The group's decisions on a symbol, drawn on the candles of the feed it reads. */
async function groupChart(group: TradingGroup, symbol: string): Promise<GroupChart> {
  const feeds = (group.config.feeds ?? {}) as Record<string, string>;
  const feed = feeds[symbol];
  if (!feed?.startsWith("csv:")) throw new Error(`group ${group.name} reads no csv: feed for ${symbol}`);
  const [series, decisions] = await Promise.all([
    get<{ items: Candle[] }>("/candles", { data: `${symbol}=${feed.slice(4)}` }),
    get<Page<EventFrame>>("/events", { category: "decision", source: `trading_group:${group.name}`, symbol, limit: 1000 }),
  ]);
  const markers: Marker[] = [];
  for (const d of decisions.items) {
    const p = d.payload as Record<string, unknown>;
    const at = String(p.candle_time ?? d.ts);
    if (p.action === "BUY") markers.push({ time: at, kind: "entry", text: "buy" });
    else if (p.action === "SELL" || p.action === "CLOSE") markers.push({ time: at, kind: "exit", text: String(p.action).toLowerCase() });
  }
  return { candles: series.items, markers };
}

function Chart() {
  const groups = useLoad(() => get<TradingGroup[]>("/trading-groups"), []);
  const [name, setName] = useState("");
  const [symbol, setSymbol] = useState("");
  const group = groups.data?.find((g) => g.name === name);
  const symbols = Object.keys((group?.config.feeds ?? {}) as Record<string, string>);
  const chart = useLoad<GroupChart | null>(
    () => (group && symbol ? groupChart(group, symbol) : Promise.resolve(null)),
    [group?.name, symbol],
  );
  return (
    <Section title="Entries and exits" id="group-chart">
      <div class="row">
        <Field label="trading group">
          <select
            name="chart-group"
            value={name}
            onChange={(e) => {
              setName((e.target as HTMLSelectElement).value);
              setSymbol("");
            }}
          >
            <option value="">choose…</option>
            {groups.data?.map((g) => (
              <option key={g.name}>{g.name}</option>
            ))}
          </select>
        </Field>
        <Field label="symbol" hint="from the group's csv feeds">
          <select name="chart-symbol" value={symbol} onChange={(e) => setSymbol((e.target as HTMLSelectElement).value)}>
            <option value="">choose…</option>
            {symbols.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </Field>
      </div>
      <InlineError error={groups.error || chart.error} />
      {chart.data && <CandleChart candles={chart.data.candles} markers={chart.data.markers} />}
    </Section>
  );
}

export function Trading() {
  return (
    <>
      <Incidents />
      <Positions />
      <Orders />
      <RejectedIntents />
      <Chart />
    </>
  );
}

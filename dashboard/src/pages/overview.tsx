// Overview: every component with its online light, events per minute, the accounts.
import {
  get,
  type Connection,
  type EquitySummary,
  type ExecutionService,
  type LogItem,
  type Page,
  type TradeAccount,
  type TradingGroup,
  type Trigger,
} from "../api";
import { useEffect, useRef, useState } from "preact/hooks";
import { openStream } from "../api";
import { ago, dec, sign, time } from "../format";
import { Badge, InlineError, Section, showError, useLoad } from "../ui";

interface Row {
  kind: "trigger" | "trading_group" | "execution";
  name: string;
  enabled: boolean;
  detail: string;
}

interface Snapshot {
  rows: Row[];
  connected: Map<string, Connection>;
  heartbeats: Map<string, string>;
  accounts: { account: TradeAccount; summary: EquitySummary | null }[];
}

async function snapshot(): Promise<Snapshot> {
  const [triggers, groups, services, accounts, connections, beats] = await Promise.all([
    get<Trigger[]>("/triggers"),
    get<TradingGroup[]>("/trading-groups"),
    get<ExecutionService[]>("/execution-services"),
    get<TradeAccount[]>("/trade-accounts"),
    get<{ items: Connection[] }>("/connections"),
    get<Page<LogItem>>("/logs", { code: "TRIGGER_HEARTBEAT", order: "desc", limit: 500 }),
  ]);
  const heartbeats = new Map<string, string>();
  for (const l of beats.items) if (!heartbeats.has(l.source)) heartbeats.set(l.source, l.ts);
  const summaries = await Promise.all(
    accounts.map((a) =>
      get<{ summary: EquitySummary | null }>(`/accounts/${encodeURIComponent(a.name)}/equity`, {
        limit: 1,
        order: "desc",
      }).then((p) => p.summary),
    ),
  );
  return {
    rows: [
      ...triggers.map((t): Row => ({ kind: "trigger", name: t.name, enabled: t.enabled, detail: t.description })),
      ...groups.map(
        (g): Row => ({
          kind: "trading_group",
          name: g.name,
          enabled: g.enabled,
          detail: `${g.kind} · ${String(g.config.strategy ?? g.config.strategy_ref ?? "")} · triggers: ${g.triggers.join(", ") || "none"}`,
        }),
      ),
      ...services.map(
        (s): Row => ({ kind: "execution", name: s.name, enabled: true, detail: `accounts: ${s.trade_accounts.join(", ") || "none"}` }),
      ),
    ],
    connected: new Map(connections.items.map((c) => [c.principal, c])),
    heartbeats,
    accounts: accounts.map((account, i) => ({ account, summary: summaries[i] })),
  };
}

const KIND_LABEL = { trigger: "trigger", trading_group: "trading group", execution: "execution" };

/**
 * Events as the gateway stores them, counted from the live stream: an event's own
 * `ts` is its publisher's (a replayed signal carries its candle's time), so "per
 * minute" and "last event" are measured on arrival, since this page opened.
 */
function useArrivals(): { perMinute: number; window: number; last: Map<string, number> } {
  const opened = useRef(Date.now());
  const buckets = useRef(new Map<number, number>()); // second -> events
  const last = useRef(new Map<string, number>());
  const [, tick] = useState(0);
  useEffect(() => {
    const stop = openStream(
      {},
      {
        event: (e) => {
          const now = Date.now();
          const second = Math.floor(now / 1000);
          buckets.current.set(second, (buckets.current.get(second) ?? 0) + 1);
          last.current.set(e.source, now);
        },
        error: showError,
      },
    );
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => {
      stop();
      clearInterval(timer);
    };
  }, []);
  const now = Date.now();
  const oldest = Math.floor(now / 1000) - 60;
  let perMinute = 0;
  for (const [second, n] of buckets.current) {
    if (second <= oldest) buckets.current.delete(second);
    else perMinute += n;
  }
  return { perMinute, window: Math.min(60, Math.round((now - opened.current) / 1000)), last: last.current };
}

export function Overview() {
  const { data, error } = useLoad(snapshot, [], 5000);
  const arrivals = useArrivals();
  return (
    <>
      <InlineError error={error} />
      {data && (
        <>
          <div class="stats">
            <div class="stat" data-testid="stat-events-per-minute">
              <span class="stat-value">{arrivals.perMinute}</span>
              <span class="stat-label">
                events stored in the last {arrivals.window < 60 ? `${arrivals.window} s (since this page opened)` : "minute"}
              </span>
            </div>
            <div class="stat">
              <span class="stat-value">
                {data.connected.size} / {data.rows.length}
              </span>
              <span class="stat-label">components online</span>
            </div>
            <div class="stat">
              <span class="stat-value">{data.accounts.length}</span>
              <span class="stat-label">trade accounts</span>
            </div>
          </div>
          <Section title="Components" id="components">
            <table>
              <thead>
                <tr>
                  <th>kind</th>
                  <th>name</th>
                  <th>status</th>
                  <th>last heartbeat</th>
                  <th title="since this page opened">last event stored</th>
                  <th>what</th>
                </tr>
              </thead>
              <tbody>
                {data.rows.map((r) => {
                  const key = `${r.kind}:${r.name}`;
                  const online = data.connected.has(key);
                  const beat = data.heartbeats.get(key);
                  return (
                    <tr key={key} data-testid={`component-${key}`}>
                      <td>{KIND_LABEL[r.kind]}</td>
                      <td>
                        <b>{r.name}</b>
                      </td>
                      <td>
                        {!r.enabled ? (
                          <Badge kind="muted">disabled</Badge>
                        ) : online ? (
                          <Badge kind="ok">online</Badge>
                        ) : (
                          <Badge kind="bad">offline</Badge>
                        )}
                      </td>
                      <td title={time(beat)}>{r.kind === "trigger" ? ago(beat) : "—"}</td>
                      <td>{arrivals.last.has(key) ? ago(new Date(arrivals.last.get(key)!).toISOString()) : "—"}</td>
                      <td class="muted">{r.detail}</td>
                    </tr>
                  );
                })}
                {!data.rows.length && (
                  <tr>
                    <td colSpan={6} class="muted">
                      Nothing configured yet: add triggers and groups under Configuration.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Section>
          <Section title="Accounts" id="accounts">
            <table>
              <thead>
                <tr>
                  <th>account</th>
                  <th>exchange</th>
                  <th>equity</th>
                  <th>PnL today (realized)</th>
                  <th>max drawdown</th>
                  <th>as of</th>
                </tr>
              </thead>
              <tbody>
                {data.accounts.map(({ account, summary }) => (
                  <tr key={account.name} data-testid={`account-${account.name}`}>
                    <td>
                      <b>{account.name}</b>
                    </td>
                    <td>
                      {account.exchange} <Badge kind={account.mode === "live" ? "bad" : "muted"}>{account.mode}</Badge>
                    </td>
                    <td>
                      {dec(summary?.equity, 8)} {summary?.currency ?? ""}
                    </td>
                    <td class={sign(summary?.realized_pnl_today)}>{dec(summary?.realized_pnl_today, 8)}</td>
                    <td>{summary?.max_drawdown ? `${(Number(summary.max_drawdown) * 100).toFixed(2)} %` : "—"}</td>
                    <td>{ago(summary?.at)}</td>
                  </tr>
                ))}
                {!data.accounts.length && (
                  <tr>
                    <td colSpan={6} class="muted">
                      No trade accounts.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Section>
        </>
      )}
    </>
  );
}

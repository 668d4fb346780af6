// Overview: every component with its online light, events per minute, the accounts.
import {
  get,
  type Connection,
  type EquitySummary,
  type EventFrame,
  type ExecutionService,
  type LogItem,
  type Page,
  type TradeAccount,
  type TradingGroup,
  type Trigger,
} from "../api";
import { ago, dec, sign, time } from "../format";
import { Badge, InlineError, Section, useLoad } from "../ui";

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
  lastEvent: Map<string, string>;
  perMinute: number;
  perMinuteCapped: boolean;
  accounts: { account: TradeAccount; summary: EquitySummary | null }[];
}

async function snapshot(): Promise<Snapshot> {
  const since = new Date(Date.now() - 60_000).toISOString();
  const [triggers, groups, services, accounts, connections, beats, recent, latest] = await Promise.all([
    get<Trigger[]>("/triggers"),
    get<TradingGroup[]>("/trading-groups"),
    get<ExecutionService[]>("/execution-services"),
    get<TradeAccount[]>("/trade-accounts"),
    get<{ items: Connection[] }>("/connections"),
    get<Page<LogItem>>("/logs", { code: "TRIGGER_HEARTBEAT", order: "desc", limit: 500 }),
    get<Page<EventFrame>>("/events", { since, limit: 1000 }),
    get<Page<EventFrame>>("/events", { order: "desc", limit: 500 }),
  ]);
  const heartbeats = new Map<string, string>();
  for (const l of beats.items) if (!heartbeats.has(l.source)) heartbeats.set(l.source, l.ts);
  const lastEvent = new Map<string, string>();
  for (const e of latest.items) if (!lastEvent.has(e.source)) lastEvent.set(e.source, e.ts);
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
    lastEvent,
    perMinute: recent.items.length,
    perMinuteCapped: recent.next_after !== null,
    accounts: accounts.map((account, i) => ({ account, summary: summaries[i] })),
  };
}

const KIND_LABEL = { trigger: "trigger", trading_group: "trading group", execution: "execution" };

export function Overview() {
  const { data, error } = useLoad(snapshot, [], 5000);
  return (
    <>
      <InlineError error={error} />
      {data && (
        <>
          <div class="stats">
            <div class="stat" data-testid="stat-events-per-minute">
              <span class="stat-value">
                {data.perMinute}
                {data.perMinuteCapped ? "+" : ""}
              </span>
              <span class="stat-label">events in the last minute</span>
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
                  <th>last event</th>
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
                      <td title={time(data.lastEvent.get(key))}>{ago(data.lastEvent.get(key))}</td>
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

// One chain, followed by correlation_id: signal -> discussion -> decision -> intent
// -> order -> fill, each from its own REST resource, in the order they happened.
import { ApiError, get, type EventFrame, type Fill, type Intent, type LogItem, type Order, type Page } from "../api";
import { dec, summary, symbolOf, time } from "../format";
import { Badge, InlineError, Section, useLoad } from "../ui";

interface Step {
  kind: string;
  at: string;
  order: number;
  title: string;
  source: string;
  body: Record<string, unknown> | string;
  id: string;
  transcript?: boolean;
}

const RANK: Record<string, number> = { signal: 0, discussion: 1, decision: 2, intent: 3, order: 4, fill: 5, config_update: 6, log: 7 };

interface Chain {
  steps: Step[];
  discussionsNote: string | null;
}

async function load(correlationId: string): Promise<Chain> {
  const q = { correlation_id: correlationId, limit: 1000 };
  const [events, logs, intents, orders, fills] = await Promise.all([
    get<Page<EventFrame>>("/events", q),
    get<Page<LogItem>>("/logs", q),
    get<Page<Intent, string>>("/intents", q),
    get<Page<Order>>("/orders", q),
    get<Page<Fill>>("/fills", q),
  ]);
  let discussionsNote: string | null = null;
  let discussions: Record<string, unknown>[] = [];
  try {
    discussions = (await get<Page<Record<string, unknown>, string>>("/discussions", q)).items;
  } catch (e) {
    // The discussions resource is newer than some gateways: say so, do not hide it.
    if (e instanceof ApiError && e.status === 404) discussionsNote = `discussions: ${e.message}`;
    else throw e;
  }
  const steps: Step[] = [
    ...events.items.map((e) => ({
      kind: e.category,
      at: e.ts,
      order: e.seq,
      title: `${summary(e)} ${symbolOf(e)}`,
      source: e.source,
      body: e.payload,
      id: e.id,
    })),
    ...logs.items.map((l) => ({
      kind: l.code === "TRADING_GROUP_DISCUSSION_LOG" ? "discussion" : "log",
      at: l.ts,
      order: 0,
      title: l.message.split("\n")[0].slice(0, 300),
      source: l.source,
      body: `${l.code}\n\n${l.message}\n\n${JSON.stringify(l.data, null, 2)}`,
      id: l.id,
    })),
    ...discussions.map((d) => ({
      kind: "discussion",
      at: String(d.started_at ?? ""),
      order: 0,
      title: `${String(d.status ?? "")} ${String(d.action ?? "")} · ${String(d.reason ?? "")}`,
      source: `trading_group:${String(d.trading_group ?? "")}`,
      body: d,
      id: String(d.id),
      transcript: true,
    })),
    ...intents.items.map((i) => ({
      kind: "intent",
      at: i.created_at,
      order: 0,
      title: `${i.status}${i.reason ? ` (${i.reason})` : ""}: ${i.action} ${dec(i.quantity)} ${i.symbol} @ ${dec(i.price)} · ${i.message}`,
      source: `account ${i.account}`,
      body: i as unknown as Record<string, unknown>,
      id: i.id,
    })),
    ...orders.items.map((o) => ({
      kind: "order",
      at: o.created_at,
      order: 0,
      title: `${o.status}: ${o.side} ${dec(o.quantity)} ${o.symbol} (${o.type}, ${o.leg}) filled ${dec(o.filled_quantity)} @ ${dec(o.average_price)}`,
      source: `account ${o.account}`,
      body: o as unknown as Record<string, unknown>,
      id: o.client_order_id,
    })),
    ...fills.items.map((f) => ({
      kind: "fill",
      at: f.at,
      order: 0,
      title: `${f.side} ${dec(f.quantity)} ${f.symbol} @ ${dec(f.price)} fee ${dec(f.fee)}${f.realized_pnl ? ` pnl ${dec(f.realized_pnl)}` : ""}`,
      source: `account ${f.account}`,
      body: f as unknown as Record<string, unknown>,
      id: String(f.id),
    })),
  ];
  // Causal order first (a replayed signal carries its candle's time), then time.
  steps.sort((a, b) => (RANK[a.kind] ?? 9) - (RANK[b.kind] ?? 9) || (a.at < b.at ? -1 : a.at > b.at ? 1 : a.order - b.order));
  return { steps, discussionsNote };
}

export function Chain(props: { correlationId: string }) {
  const { data, error } = useLoad(() => load(props.correlationId), [props.correlationId], 5000);
  return (
    <Section
      title="Chain"
      id="chain"
      actions={
        <a href="#/stream" class="button secondary">
          back to the stream
        </a>
      }
    >
      <p>
        correlation id <code data-testid="chain-id">{props.correlationId}</code>
      </p>
      <InlineError error={error} />
      {data?.discussionsNote && <p class="muted">{data.discussionsNote}</p>}
      <ol class="chain">
        {data?.steps.map((s) => (
          <li key={s.kind + s.id} data-testid="chain-step" data-kind={s.kind}>
            <div class="chain-head">
              <Badge kind={s.kind}>{s.kind}</Badge>
              <span class="muted">{time(s.at)}</span>
              <span class="muted">{s.source}</span>
            </div>
            <div class="chain-title">
              {s.title}
              {s.kind === "discussion" && s.transcript && (
                <>
                  {" "}
                  · <a href={`#/discussions/${s.id}`}>transcript</a>
                </>
              )}
            </div>
            <details>
              <summary>details</summary>
              <pre>{typeof s.body === "string" ? s.body : JSON.stringify(s.body, null, 2)}</pre>
            </details>
          </li>
        ))}
      </ol>
      {data && !data.steps.length && <p class="muted">Nothing stored under this correlation id.</p>}
    </Section>
  );
}

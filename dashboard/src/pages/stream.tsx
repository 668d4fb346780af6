// The live event stream: recent history from REST, then /api/v1/stream; filters;
// a click on an event follows its chain by correlation_id.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, openStream, type EventFrame, type LogItem, type Page } from "../api";
import { summary, symbolOf, time } from "../format";
import { Badge, Checklist, Field, showError } from "../ui";

const CATEGORIES = ["signal", "decision", "order", "config_update"];
const DISCUSSION = "TRADING_GROUP_DISCUSSION_LOG";
const KEEP = 500;

// Events are ordered by `seq` (commit order; their `ts` is the publisher's, and a
// replayed signal carries its candle's time). Logs have a sequence of their own, so
// each is placed after the event that was newest when it arrived, or, for history,
// after the event it shares a correlation id with.
type Item = { type: "event"; e: EventFrame; order: number } | { type: "log"; l: LogItem; order: number };

const keyOf = (i: Item) => (i.type === "event" ? `e${i.e.seq}` : `l${i.l.seq}`);

function merge(items: Item[], more: Item[]): Item[] {
  const seen = new Set(items.map(keyOf));
  const all = [...items, ...more.filter((i) => !seen.has(keyOf(i)))];
  all.sort((a, b) => b.order - a.order || keyOf(b).localeCompare(keyOf(a)));
  return all.slice(0, KEEP);
}

function placeLogs(events: EventFrame[], logs: LogItem[]): Item[] {
  const byCorrelation = new Map<string, number>();
  for (const e of events) {
    const c = e.trace.correlation_id;
    if (c && (!byCorrelation.has(c) || e.seq < byCorrelation.get(c)!)) byCorrelation.set(c, e.seq);
  }
  return logs.map((l) => ({
    type: "log",
    l,
    order: (byCorrelation.get(l.trace.correlation_id ?? "") ?? 0) + l.seq / 1e12 + 0.5,
  }));
}

export function Stream() {
  const [categories, setCategories] = useState<string[]>(["signal", "decision", "order"]);
  const [discussions, setDiscussions] = useState(true);
  const [source, setSource] = useState("");
  const [symbol, setSymbol] = useState("");
  const [items, setItems] = useState<Item[]>([]);
  const [status, setStatus] = useState("connecting");
  const [lagged, setLagged] = useState(0);
  // Paused: the stream goes on, what arrives waits here, the table holds still.
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  const held = useRef<Item[]>([]);
  const [heldCount, setHeldCount] = useState(0);
  const add = (more: Item[]) => {
    if (pausedRef.current) {
      held.current.push(...more);
      setHeldCount(held.current.length);
    } else setItems((xs) => merge(xs, more));
  };
  const togglePause = () => {
    pausedRef.current = !pausedRef.current;
    setPaused(pausedRef.current);
    if (!pausedRef.current) {
      const more = held.current;
      held.current = [];
      setHeldCount(0);
      setItems((xs) => merge(xs, more));
    }
  };

  useEffect(() => {
    setItems([]);
    held.current = [];
    setHeldCount(0);
    let newest = 0;
    const sources = source.trim() ? source.split(",").map((s) => s.trim()) : [];
    const symbols = symbol.trim() ? symbol.split(",").map((s) => s.trim()) : [];
    const stop = openStream(
      { category: categories, source: sources, symbol: symbols, logs: discussions ? [DISCUSSION] : [] },
      {
        event: (e) => {
          newest = Math.max(newest, e.seq);
          add([{ type: "event", e, order: e.seq }]);
        },
        log: (l) => add([{ type: "log", l, order: newest + 0.5 + l.seq / 1e12 }]),
        lagged: (info) => setLagged(info.dropped),
        status: (s, detail) => setStatus(detail ? `${s}: ${detail}` : s),
        error: showError,
        hello: (cursor) => {
          newest = Math.max(newest, cursor.after);
          // What happened before the stream began, newest 50 per kind, from REST.
          const one = (q: Record<string, string | number>) =>
            get<Page<EventFrame>>("/events", { order: "desc", limit: 50, ...q }).then((p) => p.items);
          const wanted = categories.length ? categories : [""];
          const loads: Promise<EventFrame[]>[] = wanted.flatMap((category) =>
            (sources.length ? sources : [""]).flatMap((src) =>
              (symbols.length ? symbols : [""]).map((sym) => one({ category, source: src, symbol: sym })),
            ),
          );
          const logs = discussions
            ? get<Page<LogItem>>("/logs", { code: DISCUSSION, order: "desc", limit: 50, source: sources[0] ?? "" })
            : Promise.resolve({ items: [] as LogItem[], next_after: null });
          Promise.all([Promise.all(loads), logs])
            .then(([lists, logPage]) => {
              const events = lists.flat();
              const history: Item[] = events.map((e) => ({ type: "event", e, order: e.seq }));
              add([...history, ...placeLogs(events, logPage.items)]);
            })
            .catch(showError);
        },
      },
    );
    return stop;
  }, [categories.join(","), discussions, source, symbol]);

  return (
    <>
      <div class="card filters" data-testid="stream-filters">
        <Field label="categories">
          <Checklist name="category" options={CATEGORIES} value={categories} onChange={setCategories} />
        </Field>
        <label class="check">
          <input
            type="checkbox"
            name="discussions"
            checked={discussions}
            onChange={(e) => setDiscussions((e.target as HTMLInputElement).checked)}
          />
          discussion logs
        </label>
        <Field label="source" hint="role:name, comma-separated">
          <input
            name="source"
            placeholder="trigger:rsi-eth"
            value={source}
            onChange={(e) => setSource((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field label="symbol">
          <input
            name="symbol"
            placeholder="ETH/BTC"
            value={symbol}
            onChange={(e) => setSymbol((e.target as HTMLInputElement).value)}
          />
        </Field>
        <button class="secondary" onClick={togglePause} data-testid="pause">
          {paused ? `Resume (${heldCount} new)` : "Pause"}
        </button>
        <span class="muted" data-testid="stream-status">
          {status}
          {lagged ? ` · fell behind ${lagged} events (read back from the store)` : ""}
        </span>
      </div>
      <table class="stream" data-testid="stream-table">
        <thead>
          <tr>
            <th>time</th>
            <th>seq</th>
            <th>kind</th>
            <th>source</th>
            <th>symbol</th>
            <th>what</th>
          </tr>
        </thead>
        <tbody>
          {items.map((i) => {
            const corr = i.type === "event" ? i.e.trace.correlation_id : i.l.trace.correlation_id;
            const follow = () => corr && (location.hash = `#/chain/${encodeURIComponent(corr)}`);
            return i.type === "event" ? (
              <tr
                key={keyOf(i)}
                class={"clickable cat-" + i.e.category}
                data-testid="stream-row"
                data-category={i.e.category}
                data-correlation={corr ?? ""}
                onClick={follow}
                title={corr ? "follow its chain" : "no correlation id"}
              >
                <td>{time(i.e.ts)}</td>
                <td>{i.e.seq}</td>
                <td>
                  <Badge kind={i.e.category}>{i.e.category}</Badge>
                </td>
                <td>{i.e.source}</td>
                <td>{symbolOf(i.e)}</td>
                <td>{summary(i.e)}</td>
              </tr>
            ) : (
              <tr
                key={keyOf(i)}
                class="clickable cat-log"
                data-testid="stream-row"
                data-category="discussion"
                data-correlation={corr ?? ""}
                onClick={follow}
              >
                <td>{time(i.l.ts)}</td>
                <td class="muted">log {i.l.seq}</td>
                <td>
                  <Badge kind="discussion">discussion</Badge>
                </td>
                <td>{i.l.source}</td>
                <td>{String(i.l.data.symbol ?? "")}</td>
                <td class="pre">{i.l.message}</td>
              </tr>
            );
          })}
          {!items.length && (
            <tr>
              <td colSpan={6} class="muted">
                Nothing yet: events appear here as the gateway stores them.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}

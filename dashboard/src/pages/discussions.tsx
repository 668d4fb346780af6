// Discussions: each LLM trading-group discussion, message by message, with the
// decision it led to and the tokens and cost it spent (/api/v1/discussions).
import { useState } from "preact/hooks";
import { get, type EventFrame } from "../api";
import { dec, summary, time } from "../format";
import { Badge, Field, InlineError, Section, useLoad } from "../ui";

interface Discussion {
  id: string;
  trading_group: string;
  signal_id: string | null;
  decision_id: string | null;
  correlation_id: string | null;
  symbol: string | null;
  status: string;
  action: string | null;
  reason: string | null;
  tokens_in: number;
  tokens_out: number;
  cost: string;
  started_at: string;
  finished_at: string | null;
}

interface Totals {
  calls: number;
  calls_by_status: Record<string, number>;
  tokens_in: number;
  tokens_out: number;
  cost: string;
}

interface Detail extends Discussion {
  messages: {
    seq: number;
    member: string;
    role: string;
    kind: string;
    content: string;
    data: Record<string, unknown>;
    llm_call_id: number | null;
    created_at: string;
  }[];
  signal: EventFrame | null;
  decision: EventFrame | null;
  llm_calls: Totals & { currency: string; by_member: (Totals & { member: string })[] };
}

const STATUS_KIND: Record<string, string> = { decided: "ok", hold: "muted", failed: "bad", running: "signal" };

function List() {
  const [group, setGroup] = useState("");
  const [status, setStatus] = useState("");
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const after = pages[pages.length - 1];
  const { data, error } = useLoad(
    () =>
      get<{ items: Discussion[]; next_after: string | null }>("/discussions", {
        order: "desc",
        limit: 50,
        trading_group: group,
        status,
        after,
      }),
    [group, status, after],
    after ? undefined : 5000,
  );
  return (
    <Section
      title="Discussions"
      id="discussions"
      actions={
        <>
          {pages.length > 1 && (
            <button class="secondary" onClick={() => setPages((p) => p.slice(0, -1))}>
              Newer
            </button>
          )}
          {data?.next_after && (
            <button class="secondary" onClick={() => setPages((p) => [...p, data.next_after])}>
              Older
            </button>
          )}
        </>
      }
    >
      <div class="row">
        <Field label="trading group">
          <input value={group} placeholder="any" onChange={(e) => (setGroup((e.target as HTMLInputElement).value), setPages([null]))} />
        </Field>
        <Field label="status">
          <select value={status} onChange={(e) => (setStatus((e.target as HTMLSelectElement).value), setPages([null]))}>
            {["", "running", "decided", "hold", "failed"].map((s) => (
              <option key={s} value={s}>
                {s || "any"}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <InlineError error={error} />
      <table>
        <thead>
          <tr>
            <th>started</th>
            <th>group</th>
            <th>symbol</th>
            <th>status</th>
            <th>action</th>
            <th>reason</th>
            <th>tokens in / out</th>
            <th>cost (USD)</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((d) => (
            <tr key={d.id} class="clickable" data-testid="discussion-row" onClick={() => (location.hash = `#/discussions/${d.id}`)}>
              <td>{time(d.started_at)}</td>
              <td>{d.trading_group}</td>
              <td>{d.symbol ?? "—"}</td>
              <td>
                <Badge kind={STATUS_KIND[d.status] ?? "muted"}>{d.status}</Badge>
              </td>
              <td>{d.action ?? "—"}</td>
              <td>{d.reason ?? ""}</td>
              <td>
                {d.tokens_in} / {d.tokens_out}
              </td>
              <td>{dec(d.cost)}</td>
            </tr>
          ))}
          {data && !data.items.length && (
            <tr>
              <td colSpan={8} class="muted">
                No discussions: LLM groups store one per signal they discuss.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Section>
  );
}

function Transcript(props: { id: string }) {
  const { data, error } = useLoad(() => get<Detail>(`/discussions/${props.id}`), [props.id], 5000);
  return (
    <Section
      title="Discussion"
      id="discussion-detail"
      actions={
        <a class="button secondary" href="#/discussions">
          all discussions
        </a>
      }
    >
      <InlineError error={error} />
      {data && (
        <>
          <p>
            <b>{data.trading_group}</b> on {data.symbol ?? "—"} · started {time(data.started_at)} ·{" "}
            <Badge kind={STATUS_KIND[data.status] ?? "muted"}>{data.status}</Badge>{" "}
            {data.action && <b data-testid="discussion-action">{data.action}</b>} {data.reason && <span>: {data.reason}</span>}
            {data.correlation_id && (
              <>
                {" "}
                · <a href={`#/chain/${encodeURIComponent(data.correlation_id)}`}>its chain</a>
              </>
            )}
          </p>
          <div class="stats" data-testid="discussion-cost">
            <div class="stat">
              <span class="stat-value">{data.llm_calls.calls}</span>
              <span class="stat-label">LLM calls</span>
            </div>
            <div class="stat">
              <span class="stat-value">
                {data.llm_calls.tokens_in} / {data.llm_calls.tokens_out}
              </span>
              <span class="stat-label">tokens in / out</span>
            </div>
            <div class="stat">
              <span class="stat-value">{dec(data.llm_calls.cost)}</span>
              <span class="stat-label">cost ({data.llm_calls.currency})</span>
            </div>
          </div>
          {data.signal && (
            <p>
              <Badge kind="signal">signal</Badge> {summary(data.signal)}
            </p>
          )}
          <ol class="chain" data-testid="transcript">
            {data.messages.map((m) => (
              <li key={m.seq} data-testid="message">
                <div class="chain-head">
                  <b>{m.member}</b>
                  {m.role !== m.member && <span class="muted">{m.role}</span>}
                  <Badge kind={m.kind === "error" ? "bad" : m.kind === "decision" ? "ok" : "discussion"}>{m.kind}</Badge>
                  <span class="muted">{time(m.created_at)}</span>
                </div>
                <div class="pre chain-title">{m.content}</div>
                {Object.keys(m.data).length > 0 && (
                  <details>
                    <summary>data</summary>
                    <pre>{JSON.stringify(m.data, null, 2)}</pre>
                  </details>
                )}
              </li>
            ))}
          </ol>
          {data.decision && (
            <p data-testid="discussion-decision">
              <Badge kind="decision">decision</Badge> {summary(data.decision)}
            </p>
          )}
          {data.llm_calls.by_member.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th>member</th>
                  <th>calls</th>
                  <th>tokens in / out</th>
                  <th>cost ({data.llm_calls.currency})</th>
                </tr>
              </thead>
              <tbody>
                {data.llm_calls.by_member.map((m) => (
                  <tr key={m.member}>
                    <td>{m.member}</td>
                    <td>{m.calls}</td>
                    <td>
                      {m.tokens_in} / {m.tokens_out}
                    </td>
                    <td>{dec(m.cost)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </Section>
  );
}

export function Discussions(props: { selected?: string }) {
  return props.selected ? <Transcript id={props.selected} /> : <List />;
}

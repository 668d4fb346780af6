// The only way the dashboard talks to the gateway: the public REST API under /api/v1
// and the operator stream (/api/v1/stream), both with the operator key in the
// Authorization header. The key lives in this tab's sessionStorage: never in a URL,
// never in localStorage, gone when the tab closes.

const KEY = "ats.apiKey";

export function getKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setKey(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function clearKey(): void {
  sessionStorage.removeItem(KEY);
}

export interface FieldError {
  loc: string[];
  msg: string;
  type: string;
}

/** A refused or failed call: `message` is the API's own words, `fields` its 422 list. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: FieldError[] = [],
    readonly call = "",
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The error for one body field (`["body", "triggers"]` -> "triggers"), if any. */
  field(name: string): string | undefined {
    const hit = this.fields.filter((f) => f.loc[0] === "body" && f.loc[1] === name);
    return hit.length ? hit.map((f) => f.msg).join("; ") : undefined;
  }
}

type Listener = (error: ApiError) => void;
const unauthorized: Listener[] = [];

/** Called on any 401: the key was revoked or is wrong, so the session ends. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorized.push(listener);
  return () => unauthorized.splice(unauthorized.indexOf(listener), 1);
}

function describe(status: number, data: unknown, text: string): [string, FieldError[]] {
  if (data && typeof data === "object") {
    const body = data as { detail?: unknown; message?: unknown };
    if (typeof body.detail === "string") return [body.detail, []];
    if (Array.isArray(body.detail)) {
      const fields = body.detail as FieldError[];
      const each = fields.map((f) => `${f.loc.slice(1).join(".") || f.loc[0]}: ${f.msg}`);
      const head = typeof body.message === "string" ? body.message : "invalid request";
      return [`${head} (${each.join("; ")})`, fields];
    }
  }
  return [text.trim().slice(0, 300) || `HTTP ${status}`, []];
}

async function errorOf(response: Response, call: string): Promise<ApiError> {
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const [message, fields] = describe(response.status, data, text);
  return new ApiError(response.status, message, fields, call);
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = { Authorization: `Bearer ${getKey() ?? ""}` };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

export type Query = Record<string, string | number | boolean | null | undefined | string[]>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) {
      if (v.length) params.set(k, v.join(","));
    } else params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** One REST call; throws `ApiError` with the API's message on anything but 2xx. */
export async function api<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  const url = "/api/v1" + withQuery(path, query);
  const call = `${method} ${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `the gateway did not answer (${String(e)}): is it running?`, [], call);
  }
  if (!response.ok) {
    const error = await errorOf(response, call);
    if (response.status === 401) unauthorized.forEach((l) => l(error));
    throw error;
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const get = <T>(path: string, query?: Query) => api<T>("GET", path, undefined, query);

// ------------------------------------------------------------------ live stream

export interface StreamFilter {
  category?: string[];
  source?: string[];
  symbol?: string[];
  logs?: string[];
}

export interface StreamHandlers {
  hello?(cursor: { after: number; log_after: number }): void;
  event(frame: EventFrame): void;
  log?(log: LogItem): void;
  lagged?(info: { dropped: number; after: number }): void;
  status?(status: "connecting" | "live" | "retrying" | "stopped", detail?: string): void;
  error?(error: ApiError): void;
}

/**
 * Follow `/api/v1/stream` with fetch (EventSource cannot send the key in a header).
 * Reconnects with backoff and resumes after the last `seq` seen, so nothing is
 * missed; stops on a 401 or 4xx. Returns the function that stops it.
 */
export function openStream(filter: StreamFilter, on: StreamHandlers): () => void {
  const abort = new AbortController();
  let after: number | undefined;
  let logAfter: number | undefined;
  let stopped = false;
  let delay = 500;

  async function once(): Promise<boolean> {
    on.status?.("connecting");
    const url = "/api/v1" + withQuery("/stream", { ...filter, after, log_after: logAfter });
    const response = await fetch(url, { headers: headers(false), signal: abort.signal });
    if (!response.ok) {
      const error = await errorOf(response, "GET /stream");
      on.error?.(error);
      if (response.status === 401) unauthorized.forEach((l) => l(error));
      return response.status >= 500; // 4xx will not get better by retrying
    }
    on.status?.("live");
    delay = 500;
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value;
      let cut: number;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let kind = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (!data) continue;
        const parsed = JSON.parse(data);
        if (kind === "hello") {
          after ??= parsed.after;
          logAfter ??= parsed.log_after;
          on.hello?.(parsed);
        } else if (kind === "event") {
          after = parsed.seq;
          on.event(parsed as EventFrame);
        } else if (kind === "log") {
          logAfter = parsed.seq;
          on.log?.(parsed as LogItem);
        } else if (kind === "lagged") on.lagged?.(parsed);
        else if (kind === "bye") on.status?.("retrying", parsed.reason);
      }
    }
  }

  void (async () => {
    while (!stopped) {
      let retry = true;
      try {
        retry = await once();
      } catch (e) {
        if (stopped) break;
        on.status?.("retrying", String(e));
      }
      if (!retry || stopped) break;
      on.status?.("retrying", `reconnecting in ${Math.round(delay / 1000)} s`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15_000);
    }
    on.status?.("stopped");
  })();

  return () => {
    stopped = true;
    abort.abort();
  };
}

// ------------------------------------------------------------------ shapes

export interface Trace {
  correlation_id: string | null;
  causation_id: string | null;
}

export interface EventFrame {
  seq: number;
  kind: "event";
  id: string;
  category: string;
  source: string;
  ts: string;
  title?: string | null;
  targets?: string[];
  trace: Trace;
  payload: Record<string, unknown>;
}

export interface LogItem {
  seq: number;
  id: string;
  source: string;
  level: string;
  code: string;
  message: string;
  data: Record<string, unknown>;
  trace: Trace;
  ts: string;
}

export interface Page<T, C = number> {
  items: T[];
  next_after: C | null;
}

export interface Trigger {
  name: string;
  description: string;
  config: Record<string, unknown>;
  enabled: boolean;
  has_token: boolean;
  created_at: string;
  updated_at: string;
  token?: string;
}

export interface TradingGroup extends Trigger {
  kind: string;
  triggers: string[];
}

export interface TradeAccount {
  name: string;
  exchange: string;
  mode: string;
  config: Record<string, unknown>;
  trading_groups: string[];
  execution_service: string | null;
  has_credentials: boolean;
  created_at: string;
  updated_at: string;
}

export interface ExecutionService {
  name: string;
  description: string;
  config: Record<string, unknown>;
  trade_accounts: string[];
  has_token: boolean;
  created_at: string;
  updated_at: string;
  token?: string;
}

export interface Strategy {
  name: string;
  version: number;
  symbol: string;
  description: string;
  rules: Record<string, unknown>[];
  created_at: string;
  deleted_at: string | null;
}

export interface Connection {
  principal: string;
  role: string;
  name: string;
  client_id: string;
  last_seq: number;
  queued: number;
}

export interface EquitySummary {
  at: string | null;
  currency: string | null;
  equity: string | null;
  realized_pnl_today: string | null;
  max_drawdown: string | null;
}

export interface Position {
  account: string;
  symbol: string;
  trading_group: string | null;
  quantity: string;
  average_price: string | null;
  mark_price: string | null;
  unrealized_pnl: string;
  realized_pnl: string;
  opened_at: string | null;
  updated_at: string;
}

export interface Order {
  id: number;
  account: string;
  client_order_id: string;
  trading_group: string | null;
  symbol: string;
  side: string;
  type: string;
  leg: string;
  status: string;
  quantity: string;
  filled_quantity: string;
  average_price: string | null;
  fees: string;
  reason: string | null;
  correlation_id: string | null;
  created_at: string;
}

export interface Fill {
  id: number;
  account: string;
  client_order_id: string;
  trading_group: string | null;
  correlation_id: string | null;
  symbol: string;
  side: string;
  leg: string | null;
  quantity: string;
  price: string;
  fee: string;
  realized_pnl: string | null;
  at: string;
}

export interface Intent {
  id: string;
  account: string;
  trading_group: string;
  correlation_id: string | null;
  symbol: string;
  action: string;
  confidence: number;
  status: string;
  reason: string | null;
  message: string;
  quantity: string | null;
  price: string | null;
  created_at: string;
}

export interface Incident {
  id: number;
  account: string;
  kind: string;
  status: string;
  message: string;
  details: Record<string, unknown>;
  created_at: string;
  closed_at: string | null;
  closed_note: string | null;
}

export interface Backtest {
  id: string;
  status: "queued" | "running" | "done" | "failed";
  progress: number;
  request: Record<string, unknown> & { strategy: string; params: Record<string, unknown> };
  metrics: Record<string, number | null> | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  result?: BacktestResult | null;
}

export interface BacktestTrade {
  symbol: string;
  quantity: string;
  entry_time: string;
  exit_time: string;
  entry_price: string;
  exit_price: string;
  pnl: string;
  return_pct: number;
  exit_reason: string;
}

export interface BacktestResult {
  symbols: string[];
  timeframe: string;
  capital: string;
  currency: string;
  trades: BacktestTrade[];
  equity_curve: { times: string[]; equity: number[] };
}

export interface Candle {
  time: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface CandleFile {
  path: string;
  symbol: string;
  timeframe: string;
}

// Backtests: run one from a form, watch its progress, read its metrics and charts,
// compare runs side by side. Everything goes through /api/v1/backtests. The strategy is
// picked from the gateway's catalog and its params drawn from its schema, with the
// trading-group editor's pieces (forms.tsx): the API's 422s land beside the param.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, api, get, type Backtest, type Candle, type CandleFile, type Page } from "../api";
import { CandleChart, LineChart, drawdown, type Line, type Marker } from "../charts";
import { num, time } from "../format";
import { type Schema, errorsUnder, useLocalProblems } from "../schemaform";
import { Badge, Field, InlineError, Section, showError, useLoad } from "../ui";
import { FormErrors, type Obj, ParamsForm, RawSwitch, RawText, type StrategyType, rawErrors, useRawJson } from "./forms";

const METRICS: [string, string, (v: number | null) => string][] = [
  ["total_return_pct", "total return", (v) => num(v, 2, " %")],
  ["cagr_pct", "CAGR", (v) => num(v, 2, " %")],
  ["sharpe", "Sharpe", (v) => num(v, 2)],
  ["sortino", "Sortino", (v) => num(v, 2)],
  ["max_drawdown_pct", "max drawdown", (v) => num(v, 2, " %")],
  ["volatility_pct", "volatility", (v) => num(v, 2, " %")],
  ["win_rate_pct", "win rate", (v) => num(v, 1, " %")],
  ["profit_factor", "profit factor", (v) => num(v, 2)],
  ["expectancy", "expectancy", (v) => num(v, 6)],
  ["exposure_pct", "exposure", (v) => num(v, 1, " %")],
  ["trades", "trades", (v) => num(v, 0)],
  ["fees_paid", "fees", (v) => num(v, 6)],
  ["final_equity", "final equity", (v) => num(v, 6)],
];

function describeRun(b: Backtest): string {
  const data = (b.request.data as { path: string; symbol?: string | null }[] | undefined) ?? [];
  const files = data.map((d) => d.path.split("/").pop()).join(", ");
  return `${b.request.strategy} ${JSON.stringify(b.request.params)} · ${files}`;
}

/** The params a strategy's schema gives a default, filled in: a run then says what it
 * ran with. What has none (a stop, an ensemble's members) is left for the operator. */
function defaultsOf(schema: Schema): Obj {
  const out: Obj = {};
  for (const [k, p] of Object.entries(schema.properties ?? {}))
    if (p.default !== undefined && p.default !== null && typeof p.default !== "object") out[k] = p.default;
  return out;
}

function RunForm(props: { onStarted: (id: string) => void }) {
  const files = useLoad(() => get<CandleFile[]>("/candles/files"), []);
  const catalog = useLoad(() => get<StrategyType[]>("/catalog/strategies"), []);
  const [strategy, setStrategy] = useState("sma_cross");
  // null: the chosen strategy's defaults (known once the catalog is loaded).
  const [params, setParams] = useState<Obj | null>(null);
  const raw = useRawJson("params");
  const { problems, report } = useLocalProblems();
  const [data, setData] = useState("data/ETH-BTC_5m.csv");
  const [capital, setCapital] = useState("10000");
  const [commission, setCommission] = useState("0.001");
  const [slippage, setSlippage] = useState("0");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const type = catalog.data?.find((s) => s.name === strategy);
  const value = params ?? (type ? defaultsOf(type.params_schema) : {});

  function pick(name: string) {
    setStrategy(name);
    // Another strategy's params mean nothing to this one: start from its defaults.
    setParams(null);
    const next = catalog.data?.find((s) => s.name === name);
    if (raw.text !== null) raw.open(next ? defaultsOf(next.params_schema) : {});
  }

  async function submit(e: Event) {
    e.preventDefault();
    let sent = value;
    if (raw.text !== null) {
      const parsed = raw.parse();
      if (!parsed) return;
      sent = parsed;
    }
    if (Object.keys(problems).length) return;
    setBusy(true);
    try {
      const body = {
        strategy,
        params: sent,
        data: [data],
        capital,
        commission,
        slippage_bps: slippage,
      };
      const accepted = await api<{ id: string }>("POST", "/backtests", body);
      setError(null);
      props.onStarted(accepted.id);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      showError(err);
    } finally {
      setBusy(false);
    }
  }
  const fieldError = (name: string) =>
    error?.fields
      .filter((f) => f.loc[0] === "body" && (f.loc[1] === name || (name === "strategy" && f.loc.length === 1)))
      .map((f) => f.msg)
      .join("; ") || undefined;
  return (
    <form class="card" onSubmit={submit} data-testid="backtest-form">
      <h2>Run a backtest</h2>
      <div class="form-grid">
        <Field label="strategy" error={fieldError("strategy")} hint={type?.description}>
          <select name="strategy" value={strategy} onChange={(e) => pick((e.target as HTMLSelectElement).value)}>
            {(catalog.data ?? [{ name: strategy }]).map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="candles" error={fieldError("data")}>
          <select name="data" value={data} onChange={(e) => setData((e.target as HTMLSelectElement).value)}>
            {(files.data ?? [{ path: data, symbol: "", timeframe: "" }]).map((f) => (
              <option key={f.path} value={f.path}>
                {f.path} {f.symbol && `(${f.symbol} ${f.timeframe})`}
              </option>
            ))}
          </select>
        </Field>
        <Field label="capital" error={fieldError("capital")}>
          <input name="capital" value={capital} onInput={(e) => setCapital((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="commission (fraction)" error={fieldError("commission")}>
          <input name="commission" value={commission} onInput={(e) => setCommission((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="slippage (bps)" error={fieldError("slippage_bps")}>
          <input name="slippage_bps" value={slippage} onInput={(e) => setSlippage((e.target as HTMLInputElement).value)} />
        </Field>
      </div>
      <RawSwitch title="params" name="raw-params" raw={raw} value={value} onChange={setParams} />
      {raw.text !== null ? (
        <RawText label="params (JSON)" name="params" rows={4} raw={raw} error={rawErrors(errorsUnder(error, ["body", "params"]), "params")} />
      ) : (
        type && <ParamsForm strategy={type} value={value} onChange={setParams} errors={errorsUnder(error, ["body"])} report={report} />
      )}
      <FormErrors error={error} local={problems} extra={files.error || catalog.error} before="running" />
      <div>
        <button type="submit" disabled={busy}>
          Run
        </button>
      </div>
    </form>
  );
}

function Progress(props: { b: Backtest }) {
  const pct = Math.round(props.b.progress * 100);
  return (
    <span class="progress" title={`${pct} %`} data-testid="backtest-progress">
      <span class="progress-bar" style={{ width: `${pct}%` }} />
      <span class="progress-text">
        {props.b.status} {props.b.status === "running" ? `${pct} %` : ""}
      </span>
    </span>
  );
}

function Detail(props: { id: string }) {
  const [run, setRun] = useState<Backtest | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [candles, setCandles] = useState<Candle[] | null>(null);
  // Follow the run until it ends, then stop asking.
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setRun(null);
    setCandles(null);
    const poll = async () => {
      try {
        const b = await get<Backtest>(`/backtests/${props.id}`);
        if (!alive) return;
        setRun(b);
        setError(null);
        if (b.status === "queued" || b.status === "running") timer = setTimeout(poll, 400);
        else if (b.status === "done") {
          const data = (b.request.data as { path: string; symbol?: string | null }[])[0];
          const spec = data.symbol ? `${data.symbol}=${data.path}` : data.path;
          const series = await get<{ items: Candle[] }>("/candles", { data: spec, timeframe: String(b.request.timeframe ?? "") });
          if (alive) setCandles(series.items);
        }
      } catch (e) {
        if (alive) setError(e);
      }
    };
    void poll();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [props.id]);
  const result = run?.result;
  const markers = useMemo<Marker[]>(() => {
    if (!result) return [];
    const symbol = result.symbols[0];
    return result.trades
      .filter((t) => t.symbol === symbol)
      .flatMap((t): Marker[] => [
        { time: t.entry_time, kind: "entry", text: "in" },
        { time: t.exit_time, kind: "exit", text: t.exit_reason === "exit" ? "out" : t.exit_reason },
      ]);
  }, [result]);
  const equity = useMemo<Line[]>(
    () => (result ? [{ name: "equity", times: result.equity_curve.times, values: result.equity_curve.equity }] : []),
    [result],
  );
  const dd = useMemo<Line[]>(
    () => (result ? [{ name: "drawdown", times: result.equity_curve.times, values: drawdown(result.equity_curve.equity), color: "#dc2626" }] : []),
    [result],
  );
  return (
    <Section title={`Backtest ${props.id.slice(0, 8)}`} id="backtest-detail">
      <InlineError error={error} />
      {run && (
        <>
          <p>
            {describeRun(run)} · <Progress b={run} />
          </p>
          {run.error && <p class="inline-error" role="alert">{run.error}</p>}
          {run.metrics && (
            <div class="stats" data-testid="backtest-metrics">
              {METRICS.map(([k, label, f]) => (
                <div class="stat" key={k}>
                  <span class="stat-value">{f(run.metrics![k] ?? null)}</span>
                  <span class="stat-label">{label}</span>
                </div>
              ))}
            </div>
          )}
          {result && (
            <>
              <h3>
                {result.symbols[0]} {result.timeframe}: {result.trades.length} trades
              </h3>
              {candles && <CandleChart candles={candles} markers={markers} testid="backtest-candles" />}
              <h3>Equity ({result.currency})</h3>
              <LineChart lines={equity} testid="equity-chart" />
              <h3>Drawdown</h3>
              <LineChart lines={dd} area percent testid="drawdown-chart" height={180} />
            </>
          )}
        </>
      )}
    </Section>
  );
}

function Compare(props: { ids: string[] }) {
  const { data, error } = useLoad(() => Promise.all(props.ids.map((id) => get<Backtest>(`/backtests/${id}`))), [props.ids.join(",")]);
  const lines = useMemo<Line[]>(
    () =>
      (data ?? [])
        .filter((b) => b.result)
        .map((b) => {
          // As a return in percent, so runs with different capital share an axis.
          const capital = Number(b.result!.capital);
          return {
            name: b.id.slice(0, 8),
            times: b.result!.equity_curve.times,
            values: b.result!.equity_curve.equity.map((v) => (v / capital - 1) * 100),
          };
        }),
    [data],
  );
  return (
    <Section title="Compare runs" id="backtest-compare">
      <InlineError error={error} />
      {data && (
        <>
          <table data-testid="compare-table">
            <thead>
              <tr>
                <th>metric</th>
                {data.map((b) => (
                  <th key={b.id}>
                    {b.id.slice(0, 8)}
                    <div class="muted">{describeRun(b)}</div>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {METRICS.map(([k, label, f]) => (
                <tr key={k}>
                  <td>{label}</td>
                  {data.map((b) => (
                    <td key={b.id}>{f(b.metrics?.[k] ?? null)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Return (%)</h3>
          <LineChart lines={lines} percent testid="compare-chart" />
        </>
      )}
    </Section>
  );
}

export function Backtests(props: { selected?: string }) {
  const [compare, setCompare] = useState<string[]>([]);
  const [showCompare, setShowCompare] = useState(false);
  const list = useLoad(() => get<Page<Backtest, string>>("/backtests", { limit: 50 }), [props.selected], 2000);
  return (
    <>
      <RunForm onStarted={(id) => (location.hash = `#/backtests/${id}`)} />
      {props.selected && <Detail id={props.selected} />}
      <Section
        title="Runs"
        id="backtest-runs"
        actions={
          <button disabled={compare.length < 2} onClick={() => setShowCompare(true)} data-testid="compare-button">
            Compare {compare.length || ""}
          </button>
        }
      >
        <InlineError error={list.error} />
        <table>
          <thead>
            <tr>
              <th />
              <th>created</th>
              <th>run</th>
              <th>status</th>
              <th>return</th>
              <th>Sharpe</th>
              <th>max DD</th>
              <th>trades</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((b) => (
              <tr key={b.id} class={"clickable" + (b.id === props.selected ? " selected" : "")} data-testid="backtest-row">
                <td onClick={(e) => e.stopPropagation()}>
                  <input
                    type="checkbox"
                    aria-label={`compare ${b.id}`}
                    disabled={b.status !== "done"}
                    checked={compare.includes(b.id)}
                    onChange={(e) => {
                      setShowCompare(false);
                      setCompare((c) => ((e.target as HTMLInputElement).checked ? [...c, b.id] : c.filter((x) => x !== b.id)));
                    }}
                  />
                </td>
                <td onClick={() => (location.hash = `#/backtests/${b.id}`)}>{time(b.created_at)}</td>
                <td onClick={() => (location.hash = `#/backtests/${b.id}`)}>{describeRun(b)}</td>
                <td>
                  {b.status === "failed" ? <Badge kind="bad" title={b.error ?? ""}>failed</Badge> : <Progress b={b} />}
                </td>
                <td>{num(b.metrics?.total_return_pct, 2, " %")}</td>
                <td>{num(b.metrics?.sharpe, 2)}</td>
                <td>{num(b.metrics?.max_drawdown_pct, 2, " %")}</td>
                <td>{num(b.metrics?.trades, 0)}</td>
              </tr>
            ))}
            {list.data && !list.data.items.length && (
              <tr>
                <td colSpan={8} class="muted">
                  No backtests yet: run one above.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Section>
      {showCompare && compare.length >= 2 && <Compare ids={compare} />}
    </>
  );
}

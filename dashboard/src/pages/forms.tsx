// The trading group and trade account editors: real forms, field by field. A group's
// strategy is picked from the gateway's catalog (GET /catalog/strategies) and its
// params form is generated from that strategy's params schema; risk limits come from
// GET /catalog/risk-limits; an LLM group's team and debate from LLMGroupConfig's
// schema (bundled: src/schemas/llm-group.json, kept equal to the model by a test).
// The API's 422s land beside the field their `loc` names. A raw JSON view of the
// group's config stays available as an escape hatch.
import { useState } from "preact/hooks";
import { ApiError, api, get } from "../api";
import { type Errors, type Json, type Schema, SchemaForm, errorsUnder, useLocalProblems } from "../schemaform";
import llmGroup from "../schemas/llm-group.json";
import { Checklist, Field, InlineError, parseJson, showError, useLoad } from "../ui";

export type Obj = { [key: string]: Json };
export type Row = Record<string, unknown> & { name: string };

/** A registered strategy, as GET /catalog/strategies lists it. */
export interface StrategyType {
  name: string;
  description: string;
  params_schema: Schema;
}

const LLM = llmGroup as unknown as { schema: Schema; default_teams: Record<string, Json> };
const FEEDS: Schema = {
  type: "object",
  additionalProperties: { type: "string" },
  description: "symbol -> where the group reads its candles (csv:PATH, or an exchange feed)",
};

export interface EditorProps {
  row: Row | null;
  onDone: (created: Row | null) => void;
  onCancel: () => void;
}

function without(o: Obj, ...keys: string[]): Obj {
  const out = { ...o };
  for (const k of keys) delete out[k];
  return out;
}

/** Send the body; keep the API's error for the fields. */
function useSave(path: string, row: Row | null, onDone: (created: Row | null) => void) {
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  async function save(body: Record<string, unknown>) {
    setBusy(true);
    try {
      const created = row
        ? await api<Row>("PATCH", `${path}/${encodeURIComponent(row.name)}`, body)
        : await api<Row>("POST", path, body);
      setError(null);
      onDone(row ? null : created);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      showError(err);
    } finally {
      setBusy(false);
    }
  }
  return { error, setError, busy, save };
}

export function FormErrors(props: { error: ApiError | null; local: Record<string, string>; extra?: unknown; before?: string }) {
  const local = Object.values(props.local);
  return (
    <>
      <InlineError error={props.extra} />
      {local.length > 0 && (
        <p class="inline-error" role="alert" data-testid="local-errors">
          Fix before {props.before ?? "saving"}: {local.join("; ")}
        </p>
      )}
      {props.error && (
        <p class="inline-error" role="alert" data-testid="form-error">
          {props.error.status ? `${props.error.status} ` : ""}
          {props.error.message}
        </p>
      )}
    </>
  );
}

function Buttons(props: { row: Row | null; busy: boolean; onCancel: () => void }) {
  return (
    <div class="row">
      <button type="submit" disabled={props.busy}>
        {props.row ? "Save" : "Create"}
      </button>
      <button type="button" class="secondary" onClick={props.onCancel}>
        Cancel
      </button>
    </div>
  );
}

/** A JSON object edited as text: the escape hatch beside a generated form. `text` is
 * null while the form is shown. */
export function useRawJson(label: string) {
  const [text, setText] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | undefined>();
  return {
    text,
    setText,
    problem,
    open(value: Obj) {
      setText(JSON.stringify(value, null, 2));
      setProblem(undefined);
    },
    close: () => setText(null),
    /** The text as an object; undefined, with the reason kept in `problem`, if it is not one. */
    parse(): Obj | undefined {
      const [parsed, bad] = parseJson<Obj>(text ?? "", label);
      const wrong = parsed !== undefined && (typeof parsed !== "object" || parsed === null || Array.isArray(parsed));
      setProblem(bad ?? (wrong ? `${label} must be a JSON object` : undefined));
      return bad || wrong ? undefined : (parsed ?? {});
    },
  };
}
export type RawJson = ReturnType<typeof useRawJson>;

/** The "raw JSON" switch over a form: the value becomes text, and goes back to the
 * form only once the text parses. */
export function RawSwitch(props: { title: string; name: string; raw: RawJson; value: Obj; onChange: (v: Obj) => void }) {
  const { raw } = props;
  return (
    <div class="row config-mode">
      <h3>{props.title}</h3>
      <label class="check">
        <input
          type="checkbox"
          name={props.name}
          checked={raw.text !== null}
          onChange={(e) => {
            if ((e.target as HTMLInputElement).checked) raw.open(props.value);
            else {
              const parsed = raw.parse();
              if (parsed) {
                props.onChange(parsed);
                raw.close();
              }
            }
          }}
        />
        raw JSON
      </label>
    </div>
  );
}

export function RawText(props: { label: string; name: string; rows: number; raw: RawJson; error?: string }) {
  const { raw } = props;
  return (
    <Field label={props.label} error={raw.problem ?? props.error}>
      <textarea name={props.name} rows={props.rows} value={raw.text ?? ""} onInput={(e) => raw.setText((e.target as HTMLTextAreaElement).value)} />
    </Field>
  );
}

/** A strategy's params, drawn from its schema; the 422s under `params` beside each. */
export function ParamsForm(props: {
  strategy: StrategyType;
  value: Json | undefined;
  onChange: (v: Obj) => void;
  errors: Errors;
  report: (path: string, problem: string | null) => void;
}) {
  return (
    <fieldset class="schema-object" data-testid="params-form">
      <legend>params of {props.strategy.name}</legend>
      <SchemaForm
        key={props.strategy.name}
        schema={props.strategy.params_schema}
        value={props.value}
        onChange={(v) => props.onChange((v as Obj | undefined) ?? {})}
        errors={props.errors}
        path="params"
        report={props.report}
      />
    </fieldset>
  );
}

// --------------------------------------------------------------------------- groups

export function GroupEditor(props: EditorProps) {
  const { row } = props;
  const [name, setName] = useState(row?.name ?? "");
  const [kind, setKind] = useState(String(row?.kind ?? "algo"));
  const [triggers, setTriggers] = useState<string[]>((row?.triggers as string[] | undefined) ?? []);
  const [description, setDescription] = useState(String(row?.description ?? ""));
  const [enabled, setEnabled] = useState(row ? Boolean(row.enabled) : true);
  const [config, setConfig] = useState<Obj>((row?.config as Obj | undefined) ?? {});
  const raw = useRawJson("config");
  const { problems, report } = useLocalProblems();
  const { error, busy, save } = useSave("/trading-groups", row, props.onDone);
  const sources = useLoad(
    () =>
      Promise.all([
        get<Row[]>("/triggers"),
        get<StrategyType[]>("/catalog/strategies"),
        get<Schema>("/catalog/risk-limits"),
        get<Row[]>("/strategies"),
      ]).then(([t, s, r, rules]) => ({ triggers: t.map((x) => x.name), strategies: s, risk: r, rules: rules.map((x) => x.name) })),
    [],
  );
  const errors = errorsUnder(error, ["body", "config"]);

  async function submit(e: Event) {
    e.preventDefault();
    let cfg = config;
    if (raw.text !== null) {
      const parsed = raw.parse();
      if (!parsed) return;
      cfg = parsed;
    }
    if (Object.keys(problems).length) return;
    const body: Record<string, unknown> = { name, kind, triggers, description, config: cfg };
    if (row) body.enabled = enabled;
    await save(body);
  }

  return (
    <form class="card editor" onSubmit={submit} data-testid="editor-trading-groups">
      <h2>{row ? `Edit trading group ${row.name}` : "New trading group"}</h2>
      <div class="form-grid">
        <Field label="name" error={error?.field("name")}>
          <input name="name" value={name} placeholder="btc-momentum" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="kind" error={error?.field("kind")} hint="algo: a registered strategy decides; llm: a team of LLM agents">
          <select
            name="kind"
            value={kind}
            onChange={(e) => {
              const next = (e.target as HTMLSelectElement).value;
              setKind(next);
              if (raw.text === null) setConfig((c) => forKind(c, next));
            }}
          >
            <option>algo</option>
            <option>llm</option>
          </select>
        </Field>
        <Field label="subscribes to" error={error?.field("triggers")} hint="the triggers whose signals it receives">
          <Checklist name="triggers" options={sources.data?.triggers ?? []} value={triggers} onChange={setTriggers} />
        </Field>
        <Field label="description" error={error?.field("description")}>
          <textarea name="description" rows={2} value={description} onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)} />
        </Field>
        {row && (
          <Field label="enabled">
            <input type="checkbox" name="enabled" checked={enabled} onChange={(e) => setEnabled((e.target as HTMLInputElement).checked)} />
          </Field>
        )}
      </div>
      <RawSwitch title="config" name="raw-config" raw={raw} value={config} onChange={setConfig} />
      {raw.text !== null ? (
        <RawText label="config (JSON)" name="config" rows={12} raw={raw} error={error?.field("config") ?? rawErrors(errors)} />
      ) : kind === "llm" ? (
        <LlmConfig config={config} onChange={setConfig} errors={errors} report={report} />
      ) : (
        <AlgoConfig
          config={config}
          onChange={setConfig}
          errors={errors}
          report={report}
          strategies={sources.data?.strategies ?? []}
          rules={sources.data?.rules ?? []}
          risk={sources.data?.risk}
        />
      )}
      <FormErrors error={error} local={problems} extra={sources.error} />
      <Buttons row={row} busy={busy} onCancel={props.onCancel} />
    </form>
  );
}

const LLM_ONLY = Object.keys(LLM.schema.properties ?? {}).filter((k) => !["feeds", "timeframe", "id_epoch", "risk"].includes(k));

/** What of a config still means something once the group's kind changes: an LLM
 * group refuses unknown keys, and an algorithmic one ignores the team. */
function forKind(config: Obj, kind: string): Obj {
  if (kind === "llm") return Object.fromEntries(Object.entries(config).filter(([k]) => k in (LLM.schema.properties ?? {})));
  return without(config, ...LLM_ONLY);
}

/** Errors by path as one line, for a raw JSON field; "" is the whole `label`. */
export function rawErrors(errors: Errors, label = "config"): string | undefined {
  const all = [...errors.entries()].map(([k, v]) => `${k || label}: ${v.join("; ")}`);
  return all.length ? all.join(" · ") : undefined;
}

function AlgoConfig(props: {
  config: Obj;
  onChange: (c: Obj) => void;
  errors: Errors;
  report: (path: string, problem: string | null) => void;
  strategies: StrategyType[];
  rules: string[];
  risk: Schema | undefined;
}) {
  const { config, onChange, errors } = props;
  const ref = typeof config.strategy_ref === "string" ? config.strategy_ref : null;
  const chosen = ref !== null ? `ref:${ref}` : typeof config.strategy === "string" ? config.strategy : "";
  const strategy = props.strategies.find((s) => s.name === config.strategy);
  const strategyError = errors.get("strategy") ?? errors.get("strategy_ref");
  return (
    <div class="config-form" data-testid="algo-config">
      <Field label="strategy" error={strategyError?.join("; ")} hint={strategy?.description ?? "a registered strategy, or a stored JSON-rule strategy (its latest version)"}>
        <select
          name="config.strategy"
          value={chosen}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            const rest = without(config, "strategy", "strategy_ref", "params");
            if (!v) onChange(rest);
            else if (v.startsWith("ref:")) onChange({ ...rest, strategy_ref: v.slice(4) });
            // Another strategy's params mean nothing to this one: start from its defaults.
            else onChange({ ...rest, strategy: v, params: v === config.strategy ? (config.params ?? {}) : {} });
          }}
        >
          <option value="">choose…</option>
          <optgroup label="registered strategies">
            {props.strategies.map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
          </optgroup>
          {props.rules.length > 0 && (
            <optgroup label="stored JSON-rule strategies (latest version)">
              {props.rules.map((r) => (
                <option key={r} value={`ref:${r}`}>
                  {r}
                </option>
              ))}
            </optgroup>
          )}
        </select>
      </Field>
      {strategy && (
        <ParamsForm strategy={strategy} value={config.params} onChange={(v) => onChange({ ...config, params: v })} errors={errors} report={props.report} />
      )}
      <SchemaForm
        schema={FEEDS}
        value={config.feeds}
        onChange={(v) => onChange(v === undefined ? without(config, "feeds") : { ...config, feeds: v })}
        errors={errors}
        path="feeds"
        label="feeds"
        report={props.report}
      />
      <RiskForm schema={props.risk} value={config.risk} onChange={(v) => onChange(v === undefined ? without(config, "risk") : { ...config, risk: v })} errors={errors} report={props.report} title="the group's risk limits (the stricter of the group's and the account's wins)" />
    </div>
  );
}

function RiskForm(props: {
  schema: Schema | undefined;
  value: Json | undefined;
  onChange: (v: Json | undefined) => void;
  errors: Errors;
  report: (path: string, problem: string | null) => void;
  title: string;
}) {
  if (!props.schema) return null;
  return (
    <fieldset class="schema-object risk" data-testid="risk-form">
      <legend>{props.title}</legend>
      <SchemaForm
        schema={props.schema}
        value={props.value}
        // Nothing set: no `risk` key at all, rather than an empty one.
        onChange={(v) => props.onChange(v && typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length ? undefined : v)}
        errors={props.errors}
        path="risk"
        report={props.report}
      />
    </fieldset>
  );
}

function LlmConfig(props: {
  config: Obj;
  onChange: (c: Obj) => void;
  errors: Errors;
  report: (path: string, problem: string | null) => void;
}) {
  const { config, onChange } = props;
  const mode = typeof config.risk_mode === "string" ? config.risk_mode : "single";
  return (
    <div class="config-form" data-testid="llm-config">
      {config.team === undefined || config.team === null ? (
        <p class="row">
          <span class="muted">The default team of the risk mode "{mode}".</span>
          <button type="button" class="secondary" data-testid="customize-team" onClick={() => onChange({ ...config, team: LLM.default_teams[mode] ?? LLM.default_teams.single })}>
            Customize the team
          </button>
        </p>
      ) : null}
      <SchemaForm schema={LLM.schema} value={config} onChange={(v) => onChange((v as Obj | undefined) ?? {})} errors={props.errors} path="" report={props.report} />
    </div>
  );
}

// --------------------------------------------------------------------------- accounts

export function AccountEditor(props: EditorProps) {
  const { row } = props;
  const initial = (row?.config as Obj | undefined) ?? {};
  const [name, setName] = useState(row?.name ?? "");
  const [exchange, setExchange] = useState(String(row?.exchange ?? "paper"));
  const [mode, setMode] = useState(String(row?.mode ?? "paper"));
  const [groups, setGroups] = useState<string[]>((row?.trading_groups as string[] | undefined) ?? []);
  const [risk, setRisk] = useState<Json | undefined>(initial.risk);
  const rest = without(initial, "risk");
  const [other, setOther] = useState(Object.keys(rest).length ? JSON.stringify(rest, null, 2) : "");
  const [credentials, setCredentials] = useState("");
  const [removeCredentials, setRemoveCredentials] = useState(false);
  const [local, setLocal] = useState<Record<string, string>>({});
  const { problems, report } = useLocalProblems();
  const { error, busy, save } = useSave("/trade-accounts", row, props.onDone);
  const sources = useLoad(
    () => Promise.all([get<Row[]>("/trading-groups"), get<Schema>("/catalog/risk-limits")]).then(([g, r]) => ({ groups: g.map((x) => x.name), risk: r })),
    [],
  );
  const errors = errorsUnder(error, ["body", "config"]);
  const otherErrors = [...errors.entries()].filter(([k]) => k !== "risk" && !k.startsWith("risk."));

  async function submit(e: Event) {
    e.preventDefault();
    const found: Record<string, string> = {};
    const [parsedOther, otherProblem] = parseJson<Obj>(other, "other config");
    if (otherProblem) found.config = otherProblem;
    else if (parsedOther !== undefined && (typeof parsedOther !== "object" || parsedOther === null || Array.isArray(parsedOther)))
      found.config = "other config must be a JSON object";
    else if (parsedOther && "risk" in parsedOther) found.config = "set risk limits in their form above, not here";
    const [parsedCredentials, credentialsProblem] = parseJson<Obj>(credentials, "credentials");
    if (credentialsProblem) found.credentials = credentialsProblem;
    setLocal(found);
    if (Object.keys(found).length || Object.keys(problems).length) return;
    const config: Obj = { ...(parsedOther ?? {}) };
    if (risk !== undefined) config.risk = risk;
    const body: Record<string, unknown> = { name, exchange, mode, trading_groups: groups, config };
    if (parsedCredentials !== undefined) body.credentials = parsedCredentials;
    else if (row && removeCredentials) body.credentials = null;
    await save(body);
  }

  return (
    <form class="card editor" onSubmit={submit} data-testid="editor-trade-accounts">
      <h2>{row ? `Edit trade account ${row.name}` : "New trade account"}</h2>
      <div class="form-grid">
        <Field label="name" error={error?.field("name")}>
          <input name="name" value={name} placeholder="paper-1" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="exchange" error={error?.field("exchange")} hint="the adapter: paper, oanda or a ccxt exchange id (binance, kraken…)">
          <input name="exchange" list="exchanges" value={exchange} onInput={(e) => setExchange((e.target as HTMLInputElement).value)} />
          <datalist id="exchanges">
            {["paper", "oanda", "binance", "bybit", "kraken", "coinbase", "okx"].map((x) => (
              <option key={x} value={x} />
            ))}
          </datalist>
        </Field>
        <Field label="mode" error={error?.field("mode")} hint="live sends real orders">
          <select name="mode" value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value)}>
            <option>paper</option>
            <option>live</option>
          </select>
        </Field>
        <Field label="trades the decisions of" error={error?.field("trading_groups")}>
          <Checklist name="trading_groups" options={sources.data?.groups ?? []} value={groups} onChange={setGroups} />
        </Field>
      </div>
      <RiskForm schema={sources.data?.risk} value={risk} onChange={setRisk} errors={errors} report={report} title="risk limits" />
      <div class="form-grid">
        <Field
          label="other config (JSON): starting balance, currency, adapter options"
          error={local.config ?? (otherErrors.length ? otherErrors.map(([k, v]) => `${k || "config"}: ${v.join("; ")}`).join(" · ") : undefined)}
        >
          <textarea name="config" rows={4} value={other} placeholder='{"capital": "10000", "currency": "USDT"}' onInput={(e) => setOther((e.target as HTMLTextAreaElement).value)} />
        </Field>
        <Field label="credentials (JSON, write-only)" error={local.credentials ?? error?.field("credentials")} hint="never shown again; leave empty to keep the stored ones">
          <textarea
            name="credentials"
            rows={3}
            value={credentials}
            autoComplete="off"
            placeholder={row?.has_credentials ? "stored: write new ones to replace them" : '{"apiKey": "...", "secret": "..."}'}
            onInput={(e) => setCredentials((e.target as HTMLTextAreaElement).value)}
          />
          {row?.has_credentials ? (
            <label class="check">
              <input type="checkbox" checked={removeCredentials} onChange={(e) => setRemoveCredentials((e.target as HTMLInputElement).checked)} />
              remove the stored credentials
            </label>
          ) : null}
        </Field>
      </div>
      <FormErrors error={error} local={problems} extra={sources.error} />
      <Buttons row={row} busy={busy} onCancel={props.onCancel} />
    </form>
  );
}

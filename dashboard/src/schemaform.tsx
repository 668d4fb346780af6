// A form generated from a JSON Schema (pydantic's: $defs and $ref, anyOf with null for
// optional fields, oneOf with a discriminator for tagged unions, const tags). It edits
// a JSON value in place and keeps only what the operator set: an empty field is left
// out, so the stored config is what was typed and the server's defaults apply to the
// rest. The server's 422s are shown beside the field their `loc` names; a number that
// does not parse is caught here, before anything is sent.
import type { ComponentChildren } from "preact";
import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import type { ApiError } from "./api";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

export interface Schema {
  $ref?: string;
  $defs?: Record<string, Schema>;
  type?: string;
  title?: string;
  description?: string;
  default?: Json;
  const?: Json;
  enum?: Json[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
}

/** Errors by path ("params.slow", "risk.sizing.0.fixed_notional.notional"). */
export type Errors = Map<string, string[]>;

/** The 422's errors under `prefix` (["body", "config"]), keyed by the rest of their loc. */
export function errorsUnder(error: ApiError | null, prefix: string[]): Errors {
  const out: Errors = new Map();
  for (const f of error?.fields ?? []) {
    if (f.loc.length < prefix.length || prefix.some((p, i) => f.loc[i] !== p)) continue;
    const key = f.loc.slice(prefix.length).join(".");
    out.set(key, [...(out.get(key) ?? []), f.msg]);
  }
  return out;
}

interface FormContext {
  root: Schema;
  errors: Errors;
  /** A field that cannot be sent as it is says so here (null: fine again). */
  report(path: string, problem: string | null): void;
}

const Ctx = createContext<FormContext>({ root: {}, errors: new Map(), report: () => undefined });

/** Fields that do not parse, by path: the editor refuses to send while any is left. */
export function useLocalProblems() {
  const [problems, setProblems] = useState<Record<string, string>>({});
  const report = (path: string, problem: string | null) =>
    setProblems((p) => {
      if ((p[path] ?? null) === problem) return p;
      const next = { ...p };
      if (problem === null) delete next[path];
      else next[path] = problem;
      return next;
    });
  return { problems, report };
}

export function SchemaForm(props: {
  schema: Schema;
  value: Json | undefined;
  onChange: (v: Json | undefined) => void;
  errors: Errors;
  path: string;
  report: (path: string, problem: string | null) => void;
  label?: string;
}) {
  return (
    <Ctx.Provider value={{ root: props.schema, errors: props.errors, report: props.report }}>
      <Node schema={props.schema} value={props.value} onChange={props.onChange} path={props.path} label={props.label ?? ""} top />
    </Ctx.Provider>
  );
}

function resolve(root: Schema, s: Schema): Schema {
  let out = s;
  for (let i = 0; out.$ref && i < 20; i++) {
    const name = out.$ref.replace(/^#\/\$defs\//, "");
    const target = root.$defs?.[name];
    if (!target) break;
    const { $ref: _ignored, ...rest } = out;
    out = { ...target, ...rest };
  }
  return out;
}

const join = (path: string, key: string | number) => (path ? `${path}.${key}` : String(key));
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function range(s: Schema): string {
  const lo = s.minimum ?? s.exclusiveMinimum;
  const hi = s.maximum ?? s.exclusiveMaximum;
  if (lo === undefined && hi === undefined) return "";
  const l = lo === undefined ? "" : `${s.exclusiveMinimum !== undefined ? ">" : "≥"} ${lo}`;
  const h = hi === undefined ? "" : `${s.exclusiveMaximum !== undefined ? "<" : "≤"} ${hi}`;
  return [l, h].filter(Boolean).join(", ");
}

function hintOf(s: Schema, extra?: Schema): string {
  const parts: string[] = [];
  const r = range(extra ?? s);
  if (r) parts.push(r);
  if (s.default !== undefined && s.default !== null && !(Array.isArray(s.default) && !s.default.length))
    parts.push(`default ${JSON.stringify(s.default)}`);
  if (s.description) parts.push(s.description.split("\n")[0]);
  return parts.join(" · ");
}

interface NodeProps {
  schema: Schema;
  value: Json | undefined;
  onChange: (v: Json | undefined) => void;
  path: string;
  label: string;
  /** The path errors use, when a tagged union puts its tag in the loc. */
  errPath?: string;
  nullable?: boolean;
  top?: boolean;
  omit?: string;
  compact?: boolean;
}

function Node(props: NodeProps) {
  const { root } = useContext(Ctx);
  const s = resolve(root, props.schema);
  if (s.anyOf) {
    const branches = s.anyOf.map((b) => resolve(root, b));
    const nonNull = branches.filter((b) => b.type !== "null");
    const nullable = nonNull.length < branches.length || props.nullable;
    const types = nonNull.map((b) => b.type).sort().join(",");
    if (types === "number,string") {
      return <Scalar {...props} schema={{ ...s, anyOf: undefined }} kind="decimal" nullable={nullable} rangeOf={nonNull.find((b) => b.type === "number")} />;
    }
    if (nonNull.length === 1) {
      const { anyOf: _a, ...rest } = s;
      return <Node {...props} schema={{ ...rest, ...nonNull[0], title: s.title, description: s.description ?? nonNull[0].description, default: s.default }} nullable={nullable} />;
    }
    return <RawJson {...props} schema={s} />;
  }
  if (s.oneOf && s.discriminator) return <Union {...props} schema={s} />;
  if (s.enum || s.const !== undefined) return <Choice {...props} schema={s} />;
  switch (s.type) {
    case "object":
      if (s.properties) return <ObjectNode {...props} schema={s} />;
      if (isSchema(s.additionalProperties) && isScalar(resolve(root, s.additionalProperties)))
        return <MapNode {...props} schema={s} />;
      return <RawJson {...props} schema={s} />;
    case "array":
      if (s.items && isObjectLike(resolve(root, s.items), root)) return <ListNode {...props} schema={s} />;
      return <RawJson {...props} schema={s} />;
    case "boolean":
      return <Bool {...props} schema={s} />;
    case "integer":
      return <Scalar {...props} schema={s} kind="integer" />;
    case "number":
      return <Scalar {...props} schema={s} kind="number" />;
    case "string":
      return <Scalar {...props} schema={s} kind="string" />;
    default:
      return <RawJson {...props} schema={s} />;
  }
}

const isSchema = (v: unknown): v is Schema => typeof v === "object" && v !== null;
const isScalar = (s: Schema) => ["string", "number", "integer"].includes(s.type ?? "");
const isObjectLike = (s: Schema, root: Schema) =>
  s.type === "object" || Boolean(s.oneOf && s.discriminator) || Boolean(s.$ref && resolve(root, s).type === "object");

function Wrap(props: { label: string; path: string; hint?: string; local?: string | null; children: ComponentChildren; errPath?: string }) {
  const { errors } = useContext(Ctx);
  const server = errors.get(props.errPath ?? props.path);
  const error = props.local ?? (server ? server.join("; ") : undefined);
  return (
    <label class={"field" + (error ? " invalid" : "")} data-path={props.path}>
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint && !error ? <span class="hint">{props.hint}</span> : null}
      {error ? (
        <span class="field-error" role="alert" data-testid="field-error" data-path={props.path}>
          {error}
        </span>
      ) : null}
    </label>
  );
}

/** Errors about a whole object (a model's own check), shown at the top of its box. */
function GroupErrors(props: { path: string }) {
  const { errors } = useContext(Ctx);
  const mine = errors.get(props.path);
  if (!mine) return null;
  return (
    <p class="field-error" role="alert" data-testid="field-error" data-path={props.path}>
      {mine.join("; ")}
    </p>
  );
}

const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const INTEGER = /^-?\d+$/;

function textOf(v: Json | undefined): string {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : String(v);
}

function Scalar(props: NodeProps & { kind: "integer" | "number" | "decimal" | "string"; rangeOf?: Schema }) {
  const { report } = useContext(Ctx);
  const { schema: s, kind } = props;
  const [text, setText] = useState(() => textOf(props.value));
  const [local, setLocal] = useState<string | null>(null);
  // A value changed from outside (raw JSON, another variant) replaces the text.
  useEffect(() => {
    if (parse(text)[0] !== props.value) setText(textOf(props.value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(props.value ?? null)]);
  useEffect(() => () => report(props.path, null), []); // eslint-disable-line react-hooks/exhaustive-deps

  function parse(t: string): [Json | undefined, string | null] {
    if (t.trim() === "") return [undefined, null];
    if (kind === "string") return [t, null];
    const v = t.trim();
    if (kind === "integer") return INTEGER.test(v) ? [Number(v), null] : [undefined, "not a whole number"];
    if (!NUMBER.test(v)) return [undefined, "not a number"];
    // Decimals go as the text typed: exact, as the server keeps them.
    return [kind === "decimal" ? v : Number(v), null];
  }
  function onInput(e: Event) {
    const t = (e.target as HTMLInputElement).value;
    setText(t);
    const [v, problem] = parse(t);
    setLocal(problem);
    report(props.path, problem ? `${props.path}: ${problem}` : null);
    if (!problem) props.onChange(v);
  }
  const long = kind === "string" && (s.maxLength ?? 0) > 1000;
  const placeholder = s.default !== undefined && s.default !== null ? String(s.default) : props.nullable ? "not set" : "";
  return (
    <Wrap label={props.label} path={props.path} errPath={props.errPath} hint={hintOf(s, props.rangeOf)} local={local}>
      {long ? (
        <textarea name={props.path} rows={3} value={text} placeholder={placeholder} onInput={onInput} />
      ) : (
        <input
          name={props.path}
          value={text}
          placeholder={placeholder}
          inputMode={kind === "string" ? undefined : kind === "integer" ? "numeric" : "decimal"}
          onInput={onInput}
        />
      )}
    </Wrap>
  );
}

function Bool(props: NodeProps) {
  const s = props.schema;
  const checked = props.value === undefined || props.value === null ? Boolean(s.default) : Boolean(props.value);
  return (
    <Wrap label={props.label} path={props.path} errPath={props.errPath} hint={hintOf(s)}>
      <input type="checkbox" name={props.path} checked={checked} onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)} />
    </Wrap>
  );
}

function Choice(props: NodeProps) {
  const s = props.schema;
  const options = s.enum ?? [s.const as Json];
  const value = props.value === undefined ? "" : JSON.stringify(props.value);
  return (
    <Wrap label={props.label} path={props.path} errPath={props.errPath} hint={hintOf(s)}>
      <select
        name={props.path}
        value={value}
        onChange={(e) => {
          const v = (e.target as HTMLSelectElement).value;
          props.onChange(v === "" ? undefined : (JSON.parse(v) as Json));
        }}
      >
        <option value="">{s.default !== undefined ? `default (${String(s.default)})` : props.nullable ? "not set" : "choose…"}</option>
        {options.map((o) => (
          <option key={String(o)} value={JSON.stringify(o)}>
            {String(o)}
          </option>
        ))}
      </select>
    </Wrap>
  );
}

function ObjectNode(props: NodeProps) {
  const { root } = useContext(Ctx);
  const s = props.schema;
  const value = isObj(props.value) ? props.value : undefined;
  const errPath = props.errPath ?? props.path;
  // An optional object (a protection, a stop) is off until the operator turns it on.
  if (!props.top && value === undefined) {
    return (
      <fieldset class="schema-object off" data-path={props.path}>
        <legend>{props.label}</legend>
        <GroupErrors path={errPath} />
        <button type="button" class="secondary" data-testid={`set-${props.path}`} onClick={() => props.onChange({})}>
          Set {props.label}
        </button>
        {s.description ? <span class="hint">{s.description.split("\n")[0]}</span> : null}
      </fieldset>
    );
  }
  const current: Obj = value ?? {};
  const set = (key: string, v: Json | undefined) => {
    const next = { ...current };
    if (v === undefined) delete next[key];
    else next[key] = v;
    props.onChange(next);
  };
  const entries = Object.entries(s.properties ?? {}).filter(([k]) => k !== props.omit);
  const required = new Set(s.required ?? []);
  // In a list, an item shows its main fields; the rest wait behind "more".
  const main = props.compact
    ? entries.filter(([k, p], i) => i < 4 || required.has(k) || current[k] !== undefined || resolve(root, p).enum)
    : entries;
  const more = entries.filter((e) => !main.includes(e));
  const field = ([k, p]: [string, Schema]) => (
    <Node key={k} schema={p} value={current[k]} onChange={(v) => set(k, v)} path={join(props.path, k)} errPath={join(errPath, k)} label={k} />
  );
  const body = (
    <>
      <GroupErrors path={errPath} />
      <div class="schema-fields">{main.map(field)}</div>
      {more.length > 0 && (
        <details>
          <summary>more ({more.map(([k]) => k).join(", ")})</summary>
          <div class="schema-fields">{more.map(field)}</div>
        </details>
      )}
    </>
  );
  if (props.top) return <div class="schema-object" data-path={props.path}>{body}</div>;
  return (
    <fieldset class="schema-object" data-path={props.path}>
      <legend>
        {props.label}{" "}
        {!props.compact && (
          <button type="button" class="link" title="remove" data-testid={`unset-${props.path}`} onClick={() => props.onChange(undefined)}>
            (remove)
          </button>
        )}
      </legend>
      {body}
    </fieldset>
  );
}

function Union(props: NodeProps) {
  const { root } = useContext(Ctx);
  const s = props.schema;
  const prop = s.discriminator!.propertyName;
  const variants = (s.oneOf ?? []).map((v) => resolve(root, v));
  const tagOf = (v: Schema) => {
    const p = v.properties?.[prop];
    return String(p?.const ?? p?.enum?.[0] ?? "");
  };
  const value = isObj(props.value) ? props.value : undefined;
  const tag = value ? String(value[prop] ?? "") : "";
  const variant = variants.find((v) => tagOf(v) === tag);
  const errPath = props.errPath ?? props.path;
  return (
    <fieldset class="schema-object" data-path={props.path}>
      <legend>{props.label}</legend>
      <GroupErrors path={errPath} />
      <Wrap label={prop} path={join(props.path, prop)} errPath={join(errPath, prop)}>
        <select
          name={join(props.path, prop)}
          value={tag}
          onChange={(e) => {
            const t = (e.target as HTMLSelectElement).value;
            props.onChange(t ? { [prop]: t } : undefined);
          }}
        >
          <option value="">{props.compact ? "choose…" : "not set"}</option>
          {variants.map((v) => (
            <option key={tagOf(v)} value={tagOf(v)}>
              {tagOf(v)}
            </option>
          ))}
        </select>
      </Wrap>
      {variant && value && (
        <ObjectNode
          schema={variant}
          value={value}
          onChange={(v) => props.onChange(v === undefined ? undefined : { ...(v as Obj), [prop]: tag })}
          path={props.path}
          errPath={join(errPath, tag)}
          label={tag}
          omit={prop}
          top
        />
      )}
      {variant?.description ? <span class="hint">{variant.description.split("\n")[0]}</span> : null}
    </fieldset>
  );
}

function ListNode(props: NodeProps) {
  const { root } = useContext(Ctx);
  const s = props.schema;
  const items = Array.isArray(props.value) ? props.value : undefined;
  const errPath = props.errPath ?? props.path;
  const itemSchema = resolve(root, s.items!);
  const fresh = (): Json => {
    if (itemSchema.oneOf && itemSchema.discriminator) {
      const first = resolve(root, itemSchema.oneOf[0]).properties?.[itemSchema.discriminator.propertyName];
      return { [itemSchema.discriminator.propertyName]: (first?.const ?? first?.enum?.[0] ?? "") as Json };
    }
    return {};
  };
  const set = (next: Json[] | undefined) => props.onChange(next);
  const list = items ?? [];
  const move = (i: number, d: number) => {
    const next = [...list];
    [next[i], next[i + d]] = [next[i + d], next[i]];
    set(next);
  };
  return (
    <fieldset class="schema-list" data-path={props.path}>
      <legend>{props.label}</legend>
      <GroupErrors path={errPath} />
      {s.description ? <span class="hint">{s.description.split("\n")[0]}</span> : null}
      {props.nullable && items === undefined ? (
        <p class="muted">not set{s.default === null || s.default === undefined ? "" : `: default ${JSON.stringify(s.default)}`}</p>
      ) : null}
      <ol>
        {list.map((item, i) => (
          <li key={i} class="schema-item" data-testid={`item-${props.path}`}>
            <Node
              schema={itemSchema}
              value={item}
              onChange={(v) => set(list.map((x, j) => (j === i ? (v ?? {}) : x)))}
              path={join(props.path, i)}
              errPath={join(errPath, i)}
              label={`#${i + 1}`}
              compact
            />
            <div class="row item-actions">
              <button type="button" class="secondary" disabled={i === 0} onClick={() => move(i, -1)} aria-label={`move ${props.path} ${i + 1} up`}>
                ↑
              </button>
              <button type="button" class="secondary" disabled={i === list.length - 1} onClick={() => move(i, 1)} aria-label={`move ${props.path} ${i + 1} down`}>
                ↓
              </button>
              <button
                type="button"
                class="secondary"
                onClick={() => {
                  const next = list.filter((_, j) => j !== i);
                  set(next.length || !props.nullable ? next : undefined);
                }}
                aria-label={`remove ${props.path} ${i + 1}`}
              >
                Remove
              </button>
            </div>
          </li>
        ))}
      </ol>
      <button type="button" class="secondary" data-testid={`add-${props.path}`} onClick={() => set([...list, fresh()])}>
        Add {props.label}
      </button>
      {items !== undefined && props.nullable && (
        <button type="button" class="link" onClick={() => set(undefined)}>
          back to the default
        </button>
      )}
    </fieldset>
  );
}

function MapNode(props: NodeProps) {
  const s = props.schema;
  const value = isObj(props.value) ? props.value : {};
  const [rows, setRows] = useState<[string, string][]>(() => Object.entries(value).map(([k, v]) => [k, textOf(v)]));
  const errPath = props.errPath ?? props.path;
  const push = (next: [string, string][]) => {
    setRows(next);
    const out: Obj = {};
    for (const [k, v] of next) if (k.trim()) out[k.trim()] = v;
    props.onChange(Object.keys(out).length ? out : undefined);
  };
  return (
    <fieldset class="schema-map" data-path={props.path}>
      <legend>{props.label}</legend>
      <GroupErrors path={errPath} />
      {s.description ? <span class="hint">{s.description.split("\n")[0]}</span> : null}
      {rows.map(([k, v], i) => (
        <div class="row" key={i}>
          <input aria-label={`${props.path} key ${i + 1}`} name={`${props.path}.key.${i}`} value={k} placeholder="ETH/BTC" onInput={(e) => push(rows.map((r, j) => (j === i ? [(e.target as HTMLInputElement).value, r[1]] : r)))} />
          <input aria-label={`${props.path} value ${i + 1}`} name={`${props.path}.value.${i}`} value={v} size={36} placeholder="csv:data/ETH-BTC_5m.csv" onInput={(e) => push(rows.map((r, j) => (j === i ? [r[0], (e.target as HTMLInputElement).value] : r)))} />
          <button type="button" class="secondary" onClick={() => push(rows.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" class="secondary" data-testid={`add-${props.path}`} onClick={() => setRows([...rows, ["", ""]])}>
        Add {props.label}
      </button>
    </fieldset>
  );
}

/** What the form cannot draw (deep unions, free dicts): edited as JSON, checked here. */
function RawJson(props: NodeProps) {
  const { report } = useContext(Ctx);
  const [text, setText] = useState(() => (props.value === undefined ? "" : JSON.stringify(props.value, null, 2)));
  const [local, setLocal] = useState<string | null>(null);
  useEffect(() => () => report(props.path, null), []); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <Wrap label={`${props.label} (JSON)`} path={props.path} errPath={props.errPath} hint={hintOf(props.schema)} local={local}>
      <textarea
        name={props.path}
        rows={4}
        value={text}
        onInput={(e) => {
          const t = (e.target as HTMLTextAreaElement).value;
          setText(t);
          if (!t.trim()) {
            setLocal(null);
            report(props.path, null);
            props.onChange(undefined);
            return;
          }
          try {
            props.onChange(JSON.parse(t) as Json);
            setLocal(null);
            report(props.path, null);
          } catch (err) {
            const problem = `not valid JSON: ${(err as Error).message}`;
            setLocal(problem);
            report(props.path, `${props.path}: ${problem}`);
          }
        }}
      />
    </Wrap>
  );
}

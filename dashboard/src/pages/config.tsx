// Configuration: create, edit and delete triggers, trading groups, trade accounts,
// execution services and JSON-rule strategies; issue, rotate and revoke tokens.
// Each form sends what the REST API takes and shows its 422s beside the field.
import { useState } from "preact/hooks";
import { ApiError, api, get } from "../api";
import { time } from "../format";
import { Badge, Checklist, Field, InlineError, Section, TokenBox, parseJson, showError, useLoad } from "../ui";
import { AccountEditor, type EditorProps, GroupEditor, type Row } from "./forms";

type Kind = "text" | "textarea" | "json" | "select" | "checklist" | "bool" | "secret";

interface FieldSpec {
  key: string;
  label: string;
  kind: Kind;
  options?: string[];
  source?: string; // the resource whose names a checklist offers
  hint?: string;
  createOnly?: boolean;
  editOnly?: boolean;
  rows?: number;
  placeholder?: string;
}

interface ResourceSpec {
  id: string;
  path: string;
  title: string;
  singular: string;
  tokens: boolean;
  update: "PATCH" | "PUT";
  fields: FieldSpec[];
  /** A hand-made form instead of the generic one from `fields`. */
  editor?: (props: EditorProps) => preact.JSX.Element;
  columns: [string, (row: Row) => string | preact.JSX.Element][];
}

const list = (v: unknown) => (Array.isArray(v) ? v.join(", ") : "");

const RESOURCES: ResourceSpec[] = [
  {
    id: "triggers",
    path: "/triggers",
    title: "Triggers",
    singular: "trigger",
    tokens: true,
    update: "PATCH",
    fields: [
      { key: "name", label: "name", kind: "text", placeholder: "rsi-eth" },
      { key: "description", label: "description", kind: "textarea", rows: 2 },
      { key: "config", label: "config (JSON)", kind: "json", rows: 4, hint: "sent to the trigger on connect" },
      { key: "enabled", label: "enabled", kind: "bool", editOnly: true },
    ],
    columns: [
      ["description", (r) => String(r.description)],
      ["enabled", (r) => (r.enabled ? "yes" : "no")],
    ],
  },
  {
    id: "trading-groups",
    path: "/trading-groups",
    title: "Trading groups",
    singular: "trading group",
    tokens: true,
    update: "PATCH",
    fields: [],
    editor: GroupEditor,
    columns: [
      ["kind", (r) => String(r.kind)],
      ["triggers", (r) => list(r.triggers)],
      ["strategy", (r) => String((r.config as Record<string, unknown>).strategy ?? (r.config as Record<string, unknown>).strategy_ref ?? "")],
      ["enabled", (r) => (r.enabled ? "yes" : "no")],
    ],
  },
  {
    id: "trade-accounts",
    path: "/trade-accounts",
    title: "Trade accounts",
    singular: "trade account",
    tokens: false,
    update: "PATCH",
    fields: [],
    editor: AccountEditor,
    columns: [
      ["exchange", (r) => `${String(r.exchange)} (${String(r.mode)})`],
      ["groups", (r) => list(r.trading_groups)],
      ["served by", (r) => String(r.execution_service ?? "—")],
      ["credentials", (r) => (r.has_credentials ? <Badge kind="ok">stored</Badge> : <span class="muted">none</span>)],
    ],
  },
  {
    id: "execution-services",
    path: "/execution-services",
    title: "Execution services",
    singular: "execution service",
    tokens: true,
    update: "PATCH",
    fields: [
      { key: "name", label: "name", kind: "text", placeholder: "exec-1" },
      { key: "trade_accounts", label: "serves", kind: "checklist", source: "/trade-accounts" },
      { key: "description", label: "description", kind: "textarea", rows: 2 },
      { key: "config", label: "config (JSON)", kind: "json", rows: 3 },
    ],
    columns: [
      ["accounts", (r) => list(r.trade_accounts)],
      ["description", (r) => String(r.description)],
    ],
  },
  {
    id: "strategies",
    path: "/strategies",
    title: "JSON-rule strategies",
    singular: "strategy",
    tokens: false,
    update: "PUT",
    fields: [
      { key: "name", label: "name", kind: "text", createOnly: true, placeholder: "rsi-dip" },
      { key: "symbol", label: "symbol", kind: "text", placeholder: "ETH/BTC" },
      { key: "description", label: "description", kind: "textarea", rows: 2 },
      {
        key: "rules",
        label: "rules (JSON list): the first that holds decides",
        kind: "json",
        rows: 8,
        placeholder: '[{"when": {"indicator": {"kind": "rsi", "length": 14}, "op": "<", "value": 30}, "then": "BUY"}]',
      },
    ],
    columns: [
      ["version", (r) => `v${String(r.version)}`],
      ["symbol", (r) => String(r.symbol)],
      ["rules", (r) => `${(r.rules as unknown[]).length} rule(s)`],
      ["changed", (r) => time(String(r.created_at))],
    ],
  },
];

type Values = Record<string, string | boolean | string[]>;

function initial(spec: ResourceSpec, row: Row | null): Values {
  const v: Values = {};
  for (const f of spec.fields) {
    const current = row?.[f.key];
    if (f.kind === "json") v[f.key] = current === undefined ? "" : JSON.stringify(current, null, 2);
    else if (f.kind === "checklist") v[f.key] = (current as string[] | undefined) ?? [];
    else if (f.kind === "bool") v[f.key] = current === undefined ? true : Boolean(current);
    else if (f.kind === "select") v[f.key] = (current as string | undefined) ?? f.options![0];
    else if (f.kind === "secret") v[f.key] = "";
    else v[f.key] = current === undefined || current === null ? "" : String(current);
  }
  v["__remove_credentials"] = false;
  return v;
}

function Editor(props: {
  spec: ResourceSpec;
  row: Row | null;
  onDone: (created: Row | null) => void;
  onCancel: () => void;
}) {
  const { spec, row } = props;
  const [values, setValues] = useState<Values>(() => initial(spec, row));
  const [error, setError] = useState<ApiError | null>(null);
  const [local, setLocal] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const sources = useLoad(
    () =>
      Promise.all(
        spec.fields
          .filter((f) => f.source)
          .map((f) => get<Row[]>(f.source!).then((rows) => [f.key, rows.map((r) => r.name)] as const)),
      ).then((pairs) => Object.fromEntries(pairs) as Record<string, string[]>),
    [spec.id],
  );
  const set = (key: string, value: string | boolean | string[]) => setValues((v) => ({ ...v, [key]: value }));

  async function submit(e: Event) {
    e.preventDefault();
    const body: Record<string, unknown> = {};
    const problems: Record<string, string> = {};
    for (const f of spec.fields) {
      if ((row && f.createOnly) || (!row && f.editOnly)) continue;
      const value = values[f.key];
      if (f.kind === "json" || f.kind === "secret") {
        const [parsed, problem] = parseJson<unknown>(value as string, f.label.split(" (")[0]);
        if (problem) problems[f.key] = problem;
        else if (parsed !== undefined) body[f.key] = parsed;
      } else if (f.kind === "text" || f.kind === "textarea") {
        if (value !== "" || row) body[f.key] = value;
      } else body[f.key] = value;
    }
    if (row && values["__remove_credentials"]) body.credentials = null;
    setLocal(problems);
    if (Object.keys(problems).length) return;
    setBusy(true);
    try {
      const created = row
        ? await api<Row>(spec.update, `${spec.path}/${encodeURIComponent(row.name)}`, body)
        : await api<Row>("POST", spec.path, body);
      setError(null);
      props.onDone(row ? null : created);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      showError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card form-grid editor" onSubmit={submit} data-testid={`editor-${spec.id}`}>
      <h2>{row ? `Edit ${spec.singular} ${row.name}` : `New ${spec.singular}`}</h2>
      {spec.fields
        .filter((f) => !(row && f.createOnly) && !(!row && f.editOnly))
        .map((f) => {
          const err = local[f.key] ?? error?.field(f.key);
          const value = values[f.key];
          const onText = (e: Event) => set(f.key, (e.target as HTMLInputElement).value);
          return (
            <Field key={f.key} label={f.label} error={err} hint={f.hint}>
              {f.kind === "text" && <input name={f.key} value={value as string} placeholder={f.placeholder} onInput={onText} />}
              {(f.kind === "textarea" || f.kind === "json") && (
                <textarea name={f.key} rows={f.rows} value={value as string} placeholder={f.placeholder} onInput={onText} />
              )}
              {f.kind === "secret" && (
                <>
                  <textarea
                    name={f.key}
                    rows={f.rows}
                    value={value as string}
                    autoComplete="off"
                    placeholder={row?.has_credentials ? "stored: write new ones to replace them" : '{"apiKey": "...", "secret": "..."}'}
                    onInput={onText}
                  />
                  {row?.has_credentials ? (
                    <label class="check">
                      <input
                        type="checkbox"
                        checked={values["__remove_credentials"] as boolean}
                        onChange={(e) => set("__remove_credentials", (e.target as HTMLInputElement).checked)}
                      />
                      remove the stored credentials
                    </label>
                  ) : null}
                </>
              )}
              {f.kind === "select" && (
                <select name={f.key} value={value as string} onChange={onText}>
                  {f.options!.map((o) => (
                    <option key={o}>{o}</option>
                  ))}
                </select>
              )}
              {f.kind === "bool" && (
                <input
                  type="checkbox"
                  name={f.key}
                  checked={value as boolean}
                  onChange={(e) => set(f.key, (e.target as HTMLInputElement).checked)}
                />
              )}
              {f.kind === "checklist" && (
                <Checklist
                  name={f.key}
                  options={sources.data?.[f.key] ?? []}
                  value={value as string[]}
                  onChange={(v) => set(f.key, v)}
                />
              )}
            </Field>
          );
        })}
      <InlineError error={sources.error || (error && !error.fields.length ? error : null)} />
      {error && error.fields.length > 0 && (
        <p class="inline-error" role="alert">
          {error.message}
        </p>
      )}
      <div class="row">
        <button type="submit" disabled={busy}>
          {row ? "Save" : "Create"}
        </button>
        <button type="button" class="secondary" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function EditorOf(props: EditorProps & { spec: ResourceSpec }) {
  const { spec, ...rest } = props;
  const Custom = spec.editor;
  return Custom ? <Custom {...rest} /> : <Editor spec={spec} {...rest} />;
}

function Resource(props: { spec: ResourceSpec }) {
  const { spec } = props;
  const rows = useLoad(() => get<Row[]>(spec.path), [spec.id]);
  const [editing, setEditing] = useState<Row | "new" | null>(null);
  const [token, setToken] = useState<{ name: string; token: string } | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);

  async function act(method: string, path: string, then?: (body: unknown) => void) {
    try {
      const body = await api<unknown>(method, path);
      then?.(body);
      setConfirming(null);
      await rows.reload();
    } catch (e) {
      showError(e);
    }
  }
  const url = (row: Row, tail = "") => `${spec.path}/${encodeURIComponent(row.name)}${tail}`;

  return (
    <Section
      title={spec.title}
      id={`resource-${spec.id}`}
      actions={
        <button onClick={() => setEditing("new")} data-testid={`new-${spec.id}`}>
          New {spec.singular}
        </button>
      }
    >
      {token && <TokenBox name={token.name} token={token.token} onClose={() => setToken(null)} />}
      {editing && (
        <EditorOf
          key={editing === "new" ? "new" : editing.name}
          spec={spec}
          row={editing === "new" ? null : editing}
          onCancel={() => setEditing(null)}
          onDone={(created) => {
            setEditing(null);
            if (created && typeof created.token === "string") setToken({ name: created.name, token: created.token });
            void rows.reload();
          }}
        />
      )}
      <InlineError error={rows.error} />
      <table>
        <thead>
          <tr>
            <th>name</th>
            {spec.columns.map(([label]) => (
              <th key={label}>{label}</th>
            ))}
            {spec.tokens && <th>token</th>}
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.data?.map((r) => (
            <tr key={r.name} data-testid={`row-${spec.id}-${r.name}`}>
              <td>
                <b>{r.name}</b>
              </td>
              {spec.columns.map(([label, cell]) => (
                <td key={label}>{cell(r)}</td>
              ))}
              {spec.tokens && (
                <td>{r.has_token ? <Badge kind="ok">live</Badge> : <Badge kind="bad">revoked</Badge>}</td>
              )}
              <td class="row-actions">
                <button class="secondary" onClick={() => setEditing(r)}>
                  Edit
                </button>
                {spec.tokens && (
                  <>
                    <button
                      class="secondary"
                      onClick={() =>
                        act("POST", url(r, "/token"), (b) => setToken(b as { name: string; token: string }))
                      }
                    >
                      {r.has_token ? "Rotate token" : "Issue token"}
                    </button>
                    {r.has_token ? (
                      <button class="secondary" onClick={() => act("DELETE", url(r, "/token"))}>
                        Revoke token
                      </button>
                    ) : null}
                  </>
                )}
                {confirming === r.name ? (
                  <button class="danger" onClick={() => act("DELETE", url(r))}>
                    Confirm delete
                  </button>
                ) : (
                  <button class="secondary" onClick={() => setConfirming(r.name)}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
          {rows.data && !rows.data.length && (
            <tr>
              <td colSpan={spec.columns.length + 3} class="muted">
                None yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Section>
  );
}

export function Config(props: { tab: string }) {
  const spec = RESOURCES.find((r) => r.id === props.tab) ?? RESOURCES[0];
  return (
    <>
      <div class="tabs">
        {RESOURCES.map((r) => (
          <a key={r.id} href={`#/config/${r.id}`} class={r.id === spec.id ? "active" : ""} data-testid={`tab-${r.id}`}>
            {r.title}
          </a>
        ))}
      </div>
      <Resource key={spec.id} spec={spec} />
    </>
  );
}

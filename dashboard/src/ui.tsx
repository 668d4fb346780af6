// Small shared pieces: the error banner, a loader hook, form fields, the token box.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

// ------------------------------------------------------------------ errors

type Shown = { id: number; text: string };
let shown: Shown[] = [];
let nextId = 1;
const watchers = new Set<(s: Shown[]) => void>();

function describeError(e: unknown): string {
  if (e instanceof ApiError) return `${e.call ? e.call + ": " : ""}${e.status ? e.status + " " : ""}${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

/** Show an error in the banner at the top of every page until dismissed. */
export function showError(e: unknown): void {
  shown = [...shown.slice(-4), { id: nextId++, text: describeError(e) }];
  watchers.forEach((w) => w(shown));
}

export function clearErrors(): void {
  shown = [];
  watchers.forEach((w) => w(shown));
}

export function ErrorBanner() {
  const [items, setItems] = useState(shown);
  useEffect(() => {
    watchers.add(setItems);
    return () => void watchers.delete(setItems);
  }, []);
  if (!items.length) return null;
  return (
    <div class="banner" role="alert" data-testid="error-banner">
      {items.map((i) => (
        <div class="banner-item" key={i.id}>
          <span>{i.text}</span>
          <button
            class="link"
            aria-label="dismiss"
            onClick={() => {
              shown = shown.filter((x) => x.id !== i.id);
              watchers.forEach((w) => w(shown));
            }}
          >
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

export function InlineError({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="inline-error" role="alert" data-testid="inline-error">
      {describeError(error)}
    </p>
  );
}

// ------------------------------------------------------------------ loading

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => Promise<void>;
}

/** Run `load` now, when `deps` change and every `every` ms; keep the last good data. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], every?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const current = useRef(0);
  const reload = useCallback(async () => {
    const ticket = ++current.current;
    setLoading(true);
    try {
      const value = await load();
      if (ticket === current.current) {
        setData(value);
        setError(null);
      }
    } catch (e) {
      if (ticket === current.current) setError(e);
    } finally {
      if (ticket === current.current) setLoading(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    void reload();
    if (!every) return undefined;
    const timer = setInterval(() => void reload(), every);
    return () => clearInterval(timer);
  }, [reload, every]);
  return { data, error, loading, reload };
}

// ------------------------------------------------------------------ forms

export function Field(props: {
  label: string;
  error?: string;
  hint?: string;
  children: ComponentChildren;
}) {
  return (
    <label class={"field" + (props.error ? " invalid" : "")}>
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint && !props.error ? <span class="hint">{props.hint}</span> : null}
      {props.error ? (
        <span class="field-error" role="alert" data-testid="field-error">
          {props.error}
        </span>
      ) : null}
    </label>
  );
}

/** Parse a JSON text field; returns [value, error message]. */
export function parseJson<T>(text: string, label: string): [T | undefined, string | undefined] {
  if (!text.trim()) return [undefined, undefined];
  try {
    return [JSON.parse(text) as T, undefined];
  } catch (e) {
    return [undefined, `${label} is not valid JSON: ${(e as Error).message}`];
  }
}

export function Checklist(props: {
  options: string[];
  value: string[];
  onChange: (v: string[]) => void;
  name: string;
}) {
  if (!props.options.length) return <span class="muted">none yet</span>;
  return (
    <div class="checklist" data-testid={`checklist-${props.name}`}>
      {props.options.map((o) => (
        <label key={o} class="check">
          <input
            type="checkbox"
            name={props.name}
            value={o}
            checked={props.value.includes(o)}
            onChange={(e) =>
              props.onChange(
                (e.target as HTMLInputElement).checked
                  ? [...props.value, o]
                  : props.value.filter((x) => x !== o),
              )
            }
          />
          {o}
        </label>
      ))}
    </div>
  );
}

// ------------------------------------------------------------------ token shown once

export function TokenBox(props: { name: string; token: string; onClose: () => void }) {
  const [copied, setCopied] = useState<string>("");
  const input = useRef<HTMLInputElement>(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(props.token);
      setCopied("copied");
    } catch {
      // Without clipboard permission (plain http, headless): select it for Ctrl+C.
      input.current?.select();
      setCopied(document.execCommand("copy") ? "copied" : "selected: press Ctrl+C");
    }
  }
  return (
    <div class="token-box" role="dialog" aria-label="new token" data-testid="token-box">
      <p>
        The token of <b>{props.name}</b>. It is shown <b>this once</b>: store it now.
      </p>
      <div class="row">
        <input ref={input} readOnly value={props.token} data-testid="token-value" size={60} />
        <button onClick={copy}>Copy</button>
        <span class="muted">{copied}</span>
      </div>
      <button class="secondary" onClick={props.onClose}>
        I stored it
      </button>
    </div>
  );
}

export function Badge(props: { kind: string; children: ComponentChildren; title?: string }) {
  return (
    <span class={`badge badge-${props.kind}`} title={props.title}>
      {props.children}
    </span>
  );
}

export function Section(props: { title: string; actions?: ComponentChildren; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" data-testid={props.id}>
      <header class="card-head">
        <h2>{props.title}</h2>
        <div class="actions">{props.actions}</div>
      </header>
      {props.children}
    </section>
  );
}

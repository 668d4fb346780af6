// The app shell: sign-in gate, navigation by URL hash, the error banner.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, clearKey, get, getKey, onUnauthorized, setKey } from "./api";
import { Backtests } from "./pages/backtests";
import { Chain } from "./pages/chain";
import { Config } from "./pages/config";
import { Discussions } from "./pages/discussions";
import { Overview } from "./pages/overview";
import { Stream } from "./pages/stream";
import { Trading } from "./pages/trading";
import { ErrorBanner, InlineError, clearErrors } from "./ui";
import "./style.css";

const PAGES: [string, string][] = [
  ["overview", "Overview"],
  ["stream", "Live stream"],
  ["discussions", "Discussions"],
  ["trading", "Orders & positions"],
  ["backtests", "Backtests"],
  ["config", "Configuration"],
];

function useHash(): string[] {
  const read = () => (location.hash.replace(/^#\/?/, "") || "overview").split("/").map(decodeURIComponent);
  const [hash, setHash] = useState(read);
  useEffect(() => {
    const on = () => setHash(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

function SignIn(props: { onSignedIn: () => void; reason?: string }) {
  const [key, setValue] = useState("");
  const [error, setError] = useState<unknown>(props.reason ? new ApiError(401, props.reason) : null);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setKey(key.trim());
    try {
      // Any call under the key proves it; this one is cheap.
      await get("/connections");
      clearErrors();
      props.onSignedIn();
    } catch (err) {
      clearKey();
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="signin">
      <form class="card" onSubmit={submit} data-testid="signin">
        <h1>ATS operator dashboard</h1>
        <p class="muted">
          Sign in with the operator API key (<code>ATS_API_KEY</code>; <code>make run</code> writes it to{" "}
          <code>.ats/api_key</code>). It is kept in this tab only.
        </p>
        <label class="field">
          <span class="field-label">API key</span>
          <input
            type="password"
            name="api-key"
            autoComplete="current-password"
            value={key}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
            required
          />
        </label>
        <InlineError error={error} />
        <button type="submit" disabled={busy || !key.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(() => !!getKey());
  const [reason, setReason] = useState<string | undefined>();
  const [page, ...rest] = useHash();
  useEffect(
    () =>
      onUnauthorized((e) => {
        clearKey();
        setReason(`signed out: ${e.message}`);
        setSignedIn(false);
      }),
    [],
  );
  if (!signedIn) return <SignIn reason={reason} onSignedIn={() => setSignedIn(true)} />;
  return (
    <div class="shell">
      <nav class="nav">
        <span class="brand">ATS</span>
        {PAGES.map(([id, label]) => (
          <a key={id} href={`#/${id}`} class={page === id ? "active" : ""} data-testid={`nav-${id}`}>
            {label}
          </a>
        ))}
        <span class="spacer" />
        <button
          class="link"
          onClick={() => {
            clearKey();
            setReason(undefined);
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </nav>
      <ErrorBanner />
      <main class="page" data-testid={`page-${page}`}>
        {page === "overview" && <Overview />}
        {page === "stream" && <Stream />}
        {page === "chain" && <Chain correlationId={rest.join("/")} />}
        {page === "discussions" && <Discussions selected={rest[0]} />}
        {page === "trading" && <Trading />}
        {page === "backtests" && <Backtests selected={rest[0]} />}
        {page === "config" && <Config tab={rest[0] ?? "triggers"} />}
        {!["overview", "stream", "chain", "discussions", "trading", "backtests", "config"].includes(page) && (
          <p>
            No page <code>{page}</code>: pick one above.
          </p>
        )}
      </main>
      <footer class="footer muted">
        Charts by TradingView Lightweight Charts™ (Copyright © 2025 TradingView, Inc.,{" "}
        <a href="https://www.tradingview.com/" rel="noreferrer" target="_blank">
          tradingview.com
        </a>
        , Apache-2.0).
      </footer>
    </div>
  );
}

render(<App />, document.getElementById("app")!);

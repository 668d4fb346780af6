// Display helpers. Money arrives as exact decimal strings; it is shown as sent (only
// trimmed), never parsed into floats for display. Charts, which draw, use numbers.
import type { EventFrame, LogItem } from "./api";

export function time(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 0) return "just now";
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** "0.10000000" -> "0.1"; keeps the exact digits otherwise. */
export function dec(value: string | null | undefined, places?: number): string {
  if (value === null || value === undefined) return "—";
  let text = value;
  if (places !== undefined) {
    const [int, frac = ""] = text.split(".");
    text = frac.length > places ? `${int}.${frac.slice(0, places)}` : text;
  }
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

export function num(value: number | null | undefined, digits = 2, suffix = ""): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return value.toFixed(digits) + suffix;
}

export function sign(value: string | null | undefined): string {
  if (!value) return "";
  return value.startsWith("-") ? "neg" : Number(value) > 0 ? "pos" : "";
}

/** One line that says what an event is about. */
export function summary(e: EventFrame): string {
  const p = e.payload as Record<string, unknown>;
  const str = (k: string) => (p[k] === undefined || p[k] === null ? "" : String(p[k]));
  switch (e.category) {
    case "signal":
      return [e.title, str("direction"), str("signal_type")].filter(Boolean).join(" · ");
    case "decision":
      return [str("action"), typeof p.confidence === "number" ? `conf ${p.confidence.toFixed(2)}` : "", str("reasoning")]
        .filter(Boolean)
        .join(" · ");
    case "order":
      return [str("status"), str("side"), str("quantity"), str("price") && `@ ${str("price")}`, str("reason")]
        .filter(Boolean)
        .join(" ");
    case "config_update":
      return `config for ${(e.targets ?? []).join(", ")}`;
    default:
      return e.title ?? "";
  }
}

export function symbolOf(e: EventFrame): string {
  const p = e.payload as Record<string, unknown>;
  if (typeof p.symbol === "string") return p.symbol;
  const affected = p.affected_symbols;
  return Array.isArray(affected) && affected.length ? String(affected[0]) : "";
}

export function logSummary(l: LogItem): string {
  return l.message;
}

// Charts drawn by TradingView's lightweight-charts (canvas, ~50 kB, no network).
import {
  AreaSeries,
  CandlestickSeries,
  ColorType,
  LineSeries,
  createChart,
  createSeriesMarkers,
  type IChartApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { useEffect, useRef } from "preact/hooks";
import type { Candle } from "./api";

export interface Marker {
  time: string;
  kind: "entry" | "exit";
  text?: string;
}

export interface Line {
  name: string;
  times: string[];
  values: number[];
  color?: string;
}

const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];

const seconds = (iso: string) => Math.floor(new Date(iso).getTime() / 1000) as UTCTimestamp;

function base(container: HTMLElement, height: number): IChartApi {
  return createChart(container, {
    autoSize: true,
    height,
    // The logo links to TradingView, as the library's license asks (see the footer).
    layout: { background: { type: ColorType.Solid, color: "#ffffff" }, textColor: "#1f2937", attributionLogo: true },
    grid: { vertLines: { color: "#eef0f3" }, horzLines: { color: "#eef0f3" } },
    // Small bars allowed, so fitContent shows a whole run (thousands of candles).
    timeScale: { timeVisible: true, secondsVisible: false, minBarSpacing: 0.05 },
    rightPriceScale: { borderVisible: false },
  });
}

/** Strictly increasing times, the last value kept at a repeated time. */
function points(times: string[], values: number[]): { time: Time; value: number }[] {
  const out: { time: Time; value: number }[] = [];
  times.forEach((t, i) => {
    const time = seconds(t);
    const last = out[out.length - 1];
    if (last && (last.time as number) >= time) {
      if (last.time === time) last.value = values[i];
      return;
    }
    out.push({ time, value: values[i] });
  });
  return out;
}

/** Candles with entries (▲ below the bar) and exits (▼ above it). */
export function CandleChart(props: { candles: Candle[]; markers: Marker[]; height?: number; testid?: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return undefined;
    const chart = base(ref.current, props.height ?? 360);
    const series = chart.addSeries(CandlestickSeries, {
      upColor: "#059669",
      downColor: "#dc2626",
      wickUpColor: "#059669",
      wickDownColor: "#dc2626",
      borderVisible: false,
      priceFormat: { type: "price", precision: 8, minMove: 0.00000001 },
    });
    series.setData(
      props.candles.map((c) => ({ time: seconds(c.time), open: c.open, high: c.high, low: c.low, close: c.close })),
    );
    const markers: SeriesMarker<Time>[] = props.markers
      .map((m) => ({
        time: seconds(m.time) as Time,
        position: m.kind === "entry" ? ("belowBar" as const) : ("aboveBar" as const),
        color: m.kind === "entry" ? "#2563eb" : "#d97706",
        shape: m.kind === "entry" ? ("arrowUp" as const) : ("arrowDown" as const),
        text: m.text,
      }))
      .sort((a, b) => (a.time as number) - (b.time as number));
    createSeriesMarkers(series, markers);
    chart.timeScale().fitContent();
    return () => chart.remove();
  }, [props.candles, props.markers, props.height]);
  return <div class="chart" ref={ref} data-testid={props.testid ?? "candle-chart"} data-markers={props.markers.length} />;
}

/** One or more lines on a shared time axis (equity curves, compared runs). */
export function LineChart(props: { lines: Line[]; height?: number; testid?: string; area?: boolean; percent?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!ref.current) return undefined;
    const chart = base(ref.current, props.height ?? 240);
    props.lines.forEach((line, i) => {
      const color = line.color ?? PALETTE[i % PALETTE.length];
      const format = props.percent
        ? { type: "custom" as const, minMove: 0.01, formatter: (v: number) => `${v.toFixed(2)} %` }
        : { type: "price" as const, precision: 2, minMove: 0.01 };
      const series = props.area
        ? chart.addSeries(AreaSeries, {
            lineColor: color,
            topColor: "rgba(220,38,38,0.05)",
            bottomColor: "rgba(220,38,38,0.35)",
            lineWidth: 1,
            invertFilledArea: true,
            priceFormat: format,
          })
        : chart.addSeries(LineSeries, { color, lineWidth: 2, title: line.name, priceFormat: format });
      series.setData(points(line.times, line.values));
    });
    chart.timeScale().fitContent();
    return () => chart.remove();
  }, [props.lines, props.height, props.area, props.percent]);
  return <div class="chart" ref={ref} data-testid={props.testid ?? "line-chart"} />;
}

/** Drawdown in percent below the running peak, from an equity curve. */
export function drawdown(equity: number[]): number[] {
  let peak = -Infinity;
  return equity.map((v) => {
    peak = Math.max(peak, v);
    return peak > 0 ? (v / peak - 1) * 100 : 0;
  });
}

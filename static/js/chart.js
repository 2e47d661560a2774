// The candlestick chart: lightweight-charts 5 (installed from npm, served as a static file),
// history from GET /api/v1/markets/M/klines, live candles from kline_<interval>@M.
// Prices become floats here for drawing only; no amount is computed from them.

import { api } from "./dom.js";

const HISTORY = 500;

/** One candle from GET .../klines (open_time, open, ...) or from a kline frame ({"k": {t, o, ...}}). */
function candle(row) {
  const k = row.k || row;
  const text = { open: k.o ?? k.open, high: k.h ?? k.high, low: k.l ?? k.low, close: k.c ?? k.close };
  return {
    time: (k.t ?? k.open_time) / 1000,
    open: +text.open,
    high: +text.high,
    low: +text.low,
    close: +text.close,
    text, // the server's decimal strings, for the accessible description
  };
}

const drawn = ({ time, open, high, low, close }) => ({ time, open, high, low, close });

export class CandleChart {
  constructor({ element, status, symbol, stream, interval = "1m", buttons = [] }) {
    this.symbol = symbol;
    this.element = element;
    this.label = element.getAttribute("aria-label");
    this.stream = stream;
    this.status = status;
    this.buttons = buttons;
    this.interval = null;
    this.lastTime = 0;
    const charts = window.LightweightCharts;
    if (!charts) {
      this.say("The chart library did not load (run npm ci, see the README).");
      return;
    }
    this.chart = charts.createChart(element, {
      autoSize: true,
      layout: { background: { color: "#14181e" }, textColor: "#c7cdd6", attributionLogo: false },
      grid: { vertLines: { color: "#1f252e" }, horzLines: { color: "#1f252e" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#2a313c" },
      rightPriceScale: { borderColor: "#2a313c" },
      crosshair: { mode: charts.CrosshairMode.Normal },
    });
    this.series = this.chart.addSeries(charts.CandlestickSeries, {
      upColor: "#1fc37e",
      downColor: "#f6465d",
      borderVisible: false,
      wickUpColor: "#1fc37e",
      wickDownColor: "#f6465d",
    });
    for (const button of buttons) button.addEventListener("click", () => this.show(button.dataset.interval));
    this.show(interval);
  }

  say(text) {
    if (this.status) this.status.textContent = text;
  }

  show(interval) {
    if (interval === this.interval || !this.series) return;
    if (this.interval) this.stream.unsubscribe(this.streamName());
    this.interval = interval;
    for (const button of this.buttons) button.setAttribute("aria-pressed", String(button.dataset.interval === interval));
    this.series.setData([]);
    this.lastTime = 0;
    this.stream.subscribe(this.streamName(), {
      onData: (data) => this.live(data),
      onReady: () => this.load(interval),
    });
    this.load(interval);
  }

  streamName() {
    return `kline_${this.interval}@${this.symbol}`;
  }

  async load(interval) {
    const { ok, data } = await api("GET", `/api/v1/markets/${this.symbol}/klines?interval=${interval}&limit=${HISTORY}`);
    if (interval !== this.interval) return; // switched meanwhile
    if (!ok) {
      this.say(`Candle history is unavailable (${data.message || "error"}); new candles still appear live.`);
      return;
    }
    const rows = data.map(candle);
    this.series.setData(rows.map(drawn));
    this.lastTime = rows.length ? rows[rows.length - 1].time : 0;
    this.describe(rows[rows.length - 1]);
    this.say(rows.length ? "" : "No trades yet in this interval's history.");
  }

  /** A canvas says nothing to a screen reader: the chart's label names the latest candle. */
  describe(bar) {
    const latest = bar
      ? `; latest ${this.interval} candle open ${bar.text.open}, high ${bar.text.high}, low ${bar.text.low}, close ${bar.text.close}`
      : `; no ${this.interval} candles yet`;
    this.element.setAttribute("aria-label", this.label + latest);
  }

  live(data) {
    if (!data.k || data.k.i !== this.interval) return;
    const bar = candle(data);
    if (bar.time < this.lastTime) return; // an update of a candle older than the last drawn
    this.series.update(drawn(bar));
    this.lastTime = bar.time;
    this.describe(bar);
    this.say("");
  }
}

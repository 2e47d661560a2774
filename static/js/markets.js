// The markets overview, live: each row follows its market's ticker@M stream after a REST snapshot.

import * as dec from "./decimal.js";
import { api, pageConfig } from "./dom.js";
import { StreamClient, socketUrl } from "./stream.js";

const config = pageConfig();
const symbols = config.symbols || [];
const status = document.getElementById("tickers-status");

function draw(ticker) {
  const symbol = ticker.s ?? ticker.market;
  const row = document.querySelector(`tr[data-symbol="${symbol}"]`);
  if (!row) return;
  const values = {
    c: ticker.c ?? ticker.close, P: ticker.P ?? ticker.change_percent, h: ticker.h ?? ticker.high,
    l: ticker.l ?? ticker.low, v: ticker.v ?? ticker.volume,
  };
  for (const cell of row.querySelectorAll("[data-field]")) {
    const name = cell.dataset.field;
    const value = values[name];
    if (value === null || value === undefined) continue;
    const text = name === "P" ? `${value}%` : name === "v" ? `${value} ${symbol.split("_")[0]}` : value;
    if (name === "c" && cell.textContent !== "—" && cell.textContent !== text) {
      const up = dec.cmp(dec.parse(value), dec.parse(cell.textContent)) > 0;
      cell.classList.remove("flash-up", "flash-down");
      void cell.offsetWidth; // restart the animation
      cell.classList.add(up ? "flash-up" : "flash-down");
    }
    if (name === "P") cell.className = `num ${value.startsWith("-") ? "down" : "up"}`;
    cell.textContent = text;
  }
}

async function snapshot() {
  const { ok, data } = await api("GET", "/api/v1/tickers");
  if (ok) data.forEach(draw);
}

if (symbols.length) {
  const stream = new StreamClient(socketUrl(config.ws_url), {
    onStatus: (state) => {
      status.textContent = state === "live" ? "Live." : "Reconnecting to live prices…";
    },
  });
  symbols.forEach((symbol, index) => {
    stream.subscribe(`ticker@${symbol}`, { onData: draw, onReady: index === 0 ? snapshot : undefined });
  });
  snapshot();
}

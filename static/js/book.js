// A live order book kept exactly by the procedure of docs/realtime.md ("Keeping a local order book"):
// subscribe to depth@M and buffer, fetch the REST snapshot, drop updates with u <= lastUpdateId,
// check the first kept one continues the snapshot, then apply each in order; a gap starts again.

import * as dec from "./decimal.js";
import { api, h } from "./dom.js";

const SNAPSHOT_LIMIT = 5000;

export class LocalBook {
  constructor({ symbol, stream, rows = 12, onChange = () => {} }) {
    this.symbol = symbol;
    this.rows = rows;
    this.onChange = onChange;
    this.bids = new Map(); // normalised price -> {price: decimal, qty: decimal}
    this.asks = new Map();
    this.synced = false;
    this.buffer = [];
    this.lastUpdateId = 0;
    this.fetching = false;
    stream.subscribe(`depth@${symbol}`, {
      onData: (update) => this.receive(update),
      onReady: () => this.resync(),
    });
  }

  receive(update) {
    if (!this.synced) {
      this.buffer.push(update);
      return;
    }
    if (update.u <= this.lastUpdateId) return;
    if (update.U > this.lastUpdateId + 1) {
      this.resync(); // a message was missed (or the engine restarted)
      this.buffer.push(update);
      return;
    }
    this.apply(update);
    this.onChange(this);
  }

  async resync() {
    this.synced = false;
    if (this.fetching) return;
    this.fetching = true;
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const { ok, data } = await api("GET", `/api/v1/markets/${this.symbol}/depth?limit=${SNAPSHOT_LIMIT}`);
        if (!ok) break;
        const last = data.lastUpdateId;
        const kept = this.buffer.filter((update) => update.u > last);
        if (kept.length && !(kept[0].U <= last + 1 && last + 1 <= kept[0].u)) {
          this.buffer = kept; // the snapshot is older than what we hold: take a newer one
          continue;
        }
        this.bids = levels(data.bids);
        this.asks = levels(data.asks);
        this.lastUpdateId = last;
        this.buffer = [];
        let gap = false;
        for (const update of kept) {
          if (update.U > this.lastUpdateId + 1) {
            gap = true;
            break;
          }
          this.apply(update);
        }
        if (gap) continue;
        this.synced = true;
        this.onChange(this);
        return;
      }
    } finally {
      this.fetching = false;
    }
    setTimeout(() => this.resync(), 1000); // the snapshot did not fetch or never lined up: try again
  }

  apply(update) {
    for (const [side, key] of [[this.bids, "b"], [this.asks, "a"]]) {
      for (const [price, qty] of update[key]) {
        const amount = dec.parse(qty);
        const id = dec.normalise(price);
        if (dec.isZero(amount)) side.delete(id);
        else side.set(id, { price: dec.parse(price), qty: amount });
      }
    }
    this.lastUpdateId = update.u;
  }

  /** Best first: bids high to low, asks low to high. */
  sorted(side) {
    const descending = side === this.bids;
    return [...side.values()].sort((x, y) => (descending ? dec.cmp(y.price, x.price) : dec.cmp(x.price, y.price)));
  }

  bestBid() {
    return this.sorted(this.bids)[0] || null;
  }

  bestAsk() {
    return this.sorted(this.asks)[0] || null;
  }
}

function levels(pairs) {
  const side = new Map();
  for (const [price, qty] of pairs) side.set(dec.normalise(price), { price: dec.parse(price), qty: dec.parse(qty) });
  return side;
}

/** Draw the book into the page's #asks, #bids and #spread: best levels, cumulative depth, spread. */
export function renderBook(book, { rows, quote }) {
  const bids = book.sorted(book.bids).slice(0, rows);
  const asks = book.sorted(book.asks).slice(0, rows);
  const cumulative = (levels) => {
    let total = { n: 0n, s: 0 };
    return levels.map((level) => (total = dec.add(total, level.qty)));
  };
  const bidTotals = cumulative(bids);
  const askTotals = cumulative(asks);
  const deepest = [...bidTotals, ...askTotals].reduce((max, x) => (dec.cmp(x, max) > 0 ? x : max), { n: 0n, s: 0 });
  // Bar widths only: a float is fine for drawing, never for amounts.
  const share = (total) => (dec.isZero(deepest) ? 0 : (100 * Number(dec.format(total))) / Number(dec.format(deepest)));
  const row = (level, total, label) =>
    h(
      "tr",
      { style: `--depth: ${share(total).toFixed(1)}%`, "aria-label": `${label} ${dec.format(level.qty)} at ${dec.format(level.price)}` },
      h("td", {}, dec.format(level.price)),
      h("td", {}, dec.format(level.qty)),
      h("td", {}, dec.format(total)),
    );
  // Asks are drawn worst first so the best ask sits just above the spread.
  document.getElementById("asks").replaceChildren(...asks.map((level, i) => row(level, askTotals[i], "ask")).reverse());
  document.getElementById("bids").replaceChildren(...bids.map((level, i) => row(level, bidTotals[i], "bid")));
  const spread = document.getElementById("spread");
  if (bids.length && asks.length) {
    const gap = dec.sub(asks[0].price, bids[0].price);
    const mid = dec.add(asks[0].price, bids[0].price);
    const percent = dec.isZero(mid) ? "" : ` (${((Number(dec.format(gap)) * 200) / Number(dec.format(mid))).toFixed(3)}%)`;
    spread.replaceChildren("Spread ", h("strong", { id: "spread-value" }, dec.format(gap)), ` ${quote}${percent}`);
  } else {
    spread.replaceChildren(bids.length || asks.length ? "One-sided book" : "The book is empty");
  }
}

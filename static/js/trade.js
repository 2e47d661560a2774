// The trading page, live: chart, order book, recent trades and ticker for everyone; for a logged-in
// trader also the order form (posted to the REST API, checked first by the same rules as the
// server), open orders with cancel, order history, fills and balances from the private streams.
// Without JavaScript the page still works: its forms post and the server re-renders it.

import { CandleChart } from "./chart.js";
import { LocalBook, renderBook } from "./book.js";
import * as dec from "./decimal.js";
import { api, errorText, formatClock, formatTime, h, pageConfig } from "./dom.js";
import { StreamClient, socketUrl } from "./stream.js";

const config = pageConfig();
const M = config.symbol;
const LIVE = new Set(["pending", "open", "partially_filled"]);
const TYPE_LABELS = { limit: "Limit", market: "Market", limit_maker: "Limit maker (post-only)" };
const STATUS_LABELS = {
  pending: "Pending", open: "Open", partially_filled: "Partially filled", filled: "Filled",
  cancelled: "Cancelled", expired: "Expired", rejected: "Rejected",
};
const BOOK_ROWS = 12;
const TRADE_ROWS = 40;
const HISTORY_ROWS = 20;

const statusLine = document.getElementById("book-status");
const stream = new StreamClient(socketUrl(config.ws_url), {
  onStatus: (state) => {
    statusLine.textContent = state === "live" ? "live" : state === "connecting" ? "connecting…" : "reconnecting…";
    document.body.dataset.stream = state;
  },
});

// --- Market data: book, trades, ticker, chart ---------------------------------------------------

let frame = 0;
const book = new LocalBook({
  symbol: M,
  stream,
  rows: BOOK_ROWS,
  onChange: () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderBook(book, { rows: BOOK_ROWS, quote: config.quote });
      updatePreview();
    });
  },
});

const trades = new Map(); // trade id -> {id, price, qty, time, side}
function drawTrades() {
  const rows = [...trades.values()].sort((a, b) => b.id - a.id).slice(0, TRADE_ROWS);
  for (const id of [...trades.keys()]) if (!rows.some((t) => t.id === id)) trades.delete(id);
  document.getElementById("market-trades").replaceChildren(
    ...rows.map((t) =>
      h("tr", { dataset: { tradeId: t.id } },
        h("td", { class: t.side }, t.price),
        h("td", { class: "num" }, t.qty),
        h("td", { class: "num" }, formatClock(t.time)),
      ),
    ),
  );
}
stream.subscribe(`trades@${M}`, {
  onData: (t) => {
    trades.set(t.t, { id: t.t, price: t.p, qty: t.q, time: t.T, side: t.m ? "sell" : "buy" });
    drawTrades();
  },
  onReady: async () => {
    const { ok, data } = await api("GET", `/api/v1/markets/${M}/trades?limit=${TRADE_ROWS}`);
    if (!ok) return;
    for (const t of data) trades.set(t.id, { id: t.id, price: t.price, qty: t.qty, time: t.time, side: t.taker_side });
    drawTrades();
  },
});

const tickerFields = document.querySelectorAll("#ticker [data-field]");
let lastClose = null;
function drawTicker(t) {
  // REST tickers and ticker@M frames name the same figures differently.
  const values = {
    c: t.c ?? t.close, P: t.P ?? t.change_percent, h: t.h ?? t.high, l: t.l ?? t.low, v: t.v ?? t.volume,
  };
  for (const field of tickerFields) {
    const value = values[field.dataset.field];
    if (value === null || value === undefined) continue;
    field.textContent = field.dataset.field === "P" ? `${value}%` : value;
    if (field.dataset.field === "P") field.className = value.startsWith("-") ? "down" : "up";
  }
  if (values.c && lastClose && values.c !== lastClose) {
    const up = dec.cmp(dec.parse(values.c), dec.parse(lastClose)) > 0;
    const last = document.querySelector('#ticker [data-field="c"]');
    last.className = up ? "up" : "down";
  }
  if (values.c) lastClose = values.c;
}
stream.subscribe(`ticker@${M}`, {
  onData: drawTicker,
  onReady: async () => {
    const { ok, data } = await api("GET", `/api/v1/markets/${M}/ticker`);
    if (ok) drawTicker(data);
  },
});

new CandleChart({
  element: document.getElementById("chart"),
  status: document.getElementById("chart-status"),
  symbol: M,
  stream,
  interval: "1m",
  buttons: [...document.querySelectorAll(".intervals button")],
});

// --- The trader's own: balances, orders, fills -----------------------------------------------

const form = document.getElementById("order-form");
const balances = new Map(); // asset -> {available, locked} as decimal strings

function drawBalances(rows) {
  for (const row of rows) {
    if (row.asset !== config.base && row.asset !== config.quote) continue;
    balances.set(row.asset, { available: row.available, locked: row.locked });
    const tr = document.querySelector(`#balances tr[data-asset="${row.asset}"]`);
    if (tr) {
      tr.querySelector('[data-field="available"]').textContent = row.available;
      tr.querySelector('[data-field="locked"]').textContent = row.locked;
    }
    const preview = document.querySelector(`[data-available="${row.asset}"]`);
    if (preview) preview.textContent = row.available;
  }
  updatePreview();
}

async function loadBalances() {
  const { ok, data } = await api("GET", "/api/v1/account/balances");
  if (ok) drawBalances(data);
}

function cancelCell(order) {
  if (!LIVE.has(order.status)) return h("td");
  if (order.cancel_requested) return h("td", {}, h("span", { class: "cancel-requested" }, "cancelling…"));
  return h("td", {},
    h("form", { method: "post", action: `/orders/${order.id}/cancel/`, class: "inline-form cancel-form" },
      h("input", { type: "hidden", name: "csrfmiddlewaretoken", value: form.querySelector("[name=csrfmiddlewaretoken]").value }),
      h("input", { type: "hidden", name: "next", value: location.pathname }),
      h("button", { type: "submit", class: "small", "aria-label": `Cancel order ${order.id}` }, "Cancel"),
    ),
  );
}

function sizeText(order) {
  return order.quantity ?? (order.quote_quantity ? `${order.quote_quantity} ${config.quote}` : "");
}

function typeText(order) {
  const tif = order.type === "limit" && order.time_in_force && order.time_in_force !== "gtc" ? ` ${order.time_in_force.toUpperCase()}` : "";
  return (TYPE_LABELS[order.type] || order.type) + tif;
}

function openOrderRow(order) {
  return h("tr", { dataset: { orderId: order.id } },
    h("td", {}, order.id),
    h("td", {}, formatTime(order.created_at ?? order.E)),
    h("td", { class: order.side }, order.side),
    h("td", {}, typeText(order)),
    h("td", { class: "num" }, order.price ?? "market"),
    h("td", { class: "num" }, sizeText(order)),
    h("td", { class: "num" }, order.filled_quantity),
    h("td", { class: "status" }, STATUS_LABELS[order.status] || order.status),
    cancelCell(order),
  );
}

function historyRow(order) {
  return h("tr", { dataset: { orderId: order.id } },
    h("td", {}, order.id),
    h("td", { class: order.side }, order.side, " ", h("span", { class: "muted" }, order.type)),
    h("td", { class: "num" }, order.price ?? "market"),
    h("td", { class: "num" }, `${order.filled_quantity} / ${sizeText(order)}`),
    h("td", { class: "status" }, STATUS_LABELS[order.status] || order.status,
      order.end_reason ? h("span", { class: "muted" }, ` (${order.end_reason})`) : null),
  );
}

function fillRow(fill) {
  return h("tr", { dataset: { tradeId: fill.trade_id } },
    h("td", {}, formatTime(fill.T ?? fill.executed_at)),
    h("td", { class: fill.side }, fill.side, " ", h("span", { class: "muted" }, fill.role)),
    h("td", { class: "num" }, fill.price),
    h("td", { class: "num" }, fill.qty),
    h("td", { class: "num" }, `${fill.fee} ${fill.fee_asset}`),
  );
}

/** Replace, insert (newest first) or remove the row whose data-<key> is `value`. */
function upsert(tbodyId, key, value, row, { keep = true, limit = 100 } = {}) {
  const tbody = document.getElementById(tbodyId);
  const old = tbody.querySelector(`tr[data-${key}="${value}"]`);
  if (!keep) old?.remove();
  else if (old) old.replaceWith(row);
  else {
    const rows = [...tbody.querySelectorAll(`tr[data-${key}]`)];
    const older = rows.find((tr) => Number(tr.getAttribute(`data-${key}`)) < Number(value));
    if (older) older.before(row);
    else tbody.append(row);
  }
  for (const extra of [...tbody.querySelectorAll(`tr[data-${key}]`)].slice(limit)) extra.remove();
  placeholder(tbody);
}

/** The "nothing here" row, shown exactly when the table has no other row. */
function placeholder(tbody) {
  const empty = tbody.querySelector("tr.empty");
  const hasRows = tbody.querySelector("tr:not(.empty)") !== null;
  if (hasRows && empty) empty.hidden = true;
  else if (!hasRows && empty) empty.hidden = false;
}

const ordersSeen = new Map(); // id -> latest known state, so REST replies and stream events merge

// An order only moves forward: pending, then open or partially filled, then one terminal state.
const RANK = { pending: 0, open: 1, partially_filled: 2 };
const rank = (status) => RANK[status] ?? 3;

function showOrder(order) {
  const known = ordersSeen.get(order.id) || {};
  // The REST reply to a placement can arrive after the stream already said the engine took it.
  const stale = known.status && rank(order.status) < rank(known.status);
  const merged = stale
    ? { ...order, ...known }
    : { ...known, ...order, created_at: known.created_at ?? order.created_at };
  ordersSeen.set(merged.id, merged);
  upsert("open-orders", "order-id", merged.id, openOrderRow(merged), { keep: LIVE.has(merged.status) });
  upsert("order-history", "order-id", merged.id, historyRow(merged), { limit: HISTORY_ROWS });
}

async function loadOpenOrders() {
  const { ok, data } = await api("GET", `/api/v1/orders/open?market=${M}`);
  if (!ok) return;
  const live = new Set(data.map((order) => order.id));
  for (const tr of document.querySelectorAll("#open-orders tr[data-order-id]")) {
    if (!live.has(Number(tr.dataset.orderId))) tr.remove();
  }
  for (const order of data) showOrder(order);
  placeholder(document.getElementById("open-orders"));
}

async function loadHistory() {
  const [orders, fills] = await Promise.all([
    api("GET", `/api/v1/orders?market=${M}&limit=${HISTORY_ROWS}`),
    api("GET", `/api/v1/trades?market=${M}&limit=${HISTORY_ROWS}`),
  ]);
  if (orders.ok) for (const order of orders.data.results) upsert("order-history", "order-id", order.id, historyRow(order), { limit: HISTORY_ROWS });
  if (fills.ok) {
    for (const t of fills.data.results) {
      const fill = { trade_id: t.id, executed_at: t.executed_at, side: t.side, role: t.is_maker ? "maker" : "taker",
        price: t.price, qty: t.quantity, fee: t.fee, fee_asset: t.fee_asset };
      upsert("fills", "trade-id", t.id, fillRow(fill), { limit: HISTORY_ROWS });
    }
  }
}

// --- The order form -------------------------------------------------------------------------

function field(name) {
  return form.elements[name];
}

function side() {
  return form.querySelector("input[name=side]:checked")?.value || "buy";
}

function values() {
  return {
    side: side(),
    type: field("type").value,
    price: field("price").value.trim(),
    quantity: field("quantity").value.trim(),
    quote_quantity: field("quote_quantity").value.trim(),
    time_in_force: field("time_in_force").value,
  };
}

/** What the page sends: the boxes that apply to the order type, as the no-JavaScript form does. */
function body(v) {
  const order = { market: M, side: v.side, type: v.type };
  if (v.type === "market") {
    if (v.quantity) order.quantity = v.quantity;
    if (v.quote_quantity && v.side === "buy") order.quote_quantity = v.quote_quantity;
  } else {
    order.price = v.price;
    order.quantity = v.quantity;
    order.time_in_force = v.type === "limit" ? v.time_in_force : "gtc";
  }
  return order;
}

const F = {
  tick: dec.parse(config.tick_size),
  lot: dec.parse(config.lot_size),
  minNotional: dec.parse(config.min_notional),
  maxQuantity: dec.parse(config.max_quantity),
  maker: dec.parse(config.maker_fee_rate),
  taker: dec.parse(config.taker_fee_rate),
};

function positive(name, text) {
  const value = dec.parse(text);
  if (!value) return { error: [name, `${name}: A valid number is required, as a string such as "0.015".`] };
  if (value.n <= 0n) return { error: [name, `${name} must be greater than zero, not ${dec.format(value)}.`] };
  return { value };
}

/**
 * The server's checks, in its order and with its words (orders/services.py), so most mistakes are
 * caught before sending; the server still decides (e.g. funds, a market halted meanwhile).
 * Returns [field name or null, message] or null.
 */
function check(order) {
  const notional = (value) =>
    dec.cmp(value, F.minNotional) < 0
      ? [null, `Order value ${dec.format(value)} ${config.quote} is below this market's minimum of ${config.min_notional} ${config.quote}.`]
      : null;
  const quantity = (text) => {
    const q = positive("quantity", text);
    if (q.error) return q;
    if (!dec.isMultiple(q.value, F.lot)) return { error: ["quantity", `Quantity ${dec.format(q.value)} is not a multiple of the lot size ${config.lot_size}.`] };
    if (dec.cmp(q.value, F.maxQuantity) > 0) return { error: ["quantity", `Quantity ${dec.format(q.value)} is above this market's maximum of ${config.max_quantity}.`] };
    return q;
  };
  if (config.status !== "trading") return [null, `Market ${M} is halted: it accepts no new orders until an operator resumes it.`];
  if (order.type !== "market") {
    if (!order.price || !order.quantity) return [order.price ? "quantity" : "price", "A limit order needs both price and quantity."];
    const p = positive("price", order.price);
    if (p.error) return p.error;
    if (!dec.isMultiple(p.value, F.tick)) return ["price", `Price ${dec.format(p.value)} is not a multiple of the tick size ${config.tick_size}.`];
    const q = quantity(order.quantity);
    if (q.error) return q.error;
    return notional(dec.mul(p.value, q.value));
  }
  if (!order.quantity === !order.quote_quantity) return ["quantity", "A market order needs exactly one of quantity or quote_quantity."];
  if (order.quote_quantity) {
    const spend = positive("quote_quantity", order.quote_quantity);
    if (spend.error) return spend.error;
    if (dec.places(spend.value) > config.quote_precision) return ["quote_quantity", `quote_quantity has more than ${config.quote_precision} decimals, the precision of ${config.quote}.`];
    return notional(spend.value);
  }
  const q = quantity(order.quantity);
  if (q.error) return q.error;
  const reference = order.side === "buy" ? book.bestAsk() : book.bestBid();
  return reference ? notional(dec.mul(reference.price, q.value)) : null;
}

let errorField = null;
function showError(problem) {
  const box = document.getElementById("order-error");
  if (errorField) errorField.removeAttribute("aria-invalid");
  errorField = null;
  if (!problem) {
    box.replaceChildren();
    return;
  }
  const [name, message, code] = problem;
  box.replaceChildren(message, ...(code ? [" ", h("code", {}, code)] : []));
  if (name && field(name)) {
    errorField = field(name);
    errorField.setAttribute("aria-invalid", "true");
  }
}

function setVisibility() {
  const v = values();
  const shown = new Set([v.type, v.type === "market" && v.side === "buy" ? "market-buy" : ""]);
  for (const box of form.querySelectorAll("[data-show]")) {
    box.hidden = !box.dataset.show.split(" ").some((kind) => shown.has(kind));
  }
  const submit = document.getElementById("order-submit");
  submit.className = `side-${v.side}`;
  submit.textContent = `${v.side === "buy" ? "Buy" : "Sell"} ${config.base}`;
}

/** Available balance, the order's value and the most it can pay in fees, before sending. */
function updatePreview() {
  if (!form) return;
  const v = values();
  const order = body(v);
  const cost = document.getElementById("preview-cost");
  const fee = document.getElementById("preview-fee");
  const price = order.price ? dec.parse(order.price) : (v.side === "buy" ? book.bestAsk() : book.bestBid())?.price;
  const qty = dec.parse(order.quantity || "");
  let value = null;
  const estimate = order.type === "market";
  if (order.quote_quantity) value = dec.parse(order.quote_quantity);
  else if (price && qty) value = dec.mul(price, qty);
  const spendAsset = v.side === "buy" ? config.quote : config.base;
  const spend = v.side === "buy" ? value : qty;
  const available = balances.get(spendAsset)?.available ?? document.querySelector(`[data-available="${spendAsset}"]`)?.textContent;
  const short = spend && available && dec.cmp(spend, dec.parse(available)) > 0;
  cost.textContent = value ? `${estimate ? "≈ " : ""}${dec.format(value)} ${config.quote}` : "—";
  cost.classList.toggle("short", Boolean(short));
  cost.title = short ? `More than your available ${available} ${spendAsset}` : "";
  const rate = order.type === "limit_maker" ? F.maker : dec.cmp(F.maker, F.taker) > 0 ? F.maker : F.taker;
  let charged = null;
  if (v.side === "buy" && qty) {
    charged = `${dec.format(dec.truncate(dec.mul(qty, rate), config.base_precision))} ${config.base}`;
  } else if (v.side === "sell" && value) {
    charged = `${dec.format(dec.truncate(dec.mul(value, rate), config.quote_precision))} ${config.quote}`;
  }
  fee.textContent = charged ? `${estimate ? "≈ " : ""}${charged}` : "—";
}

function wireOrderForm() {
  form.addEventListener("input", () => {
    setVisibility();
    updatePreview();
    if (errorField) showError(check(body(values())));
  });
  form.addEventListener("change", () => {
    setVisibility();
    updatePreview();
  });
  setVisibility();
  updatePreview();
  const submit = document.getElementById("order-submit");
  const notice = document.getElementById("order-notice");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    notice.replaceChildren();
    const order = body(values());
    const problem = check(order);
    showError(problem);
    if (problem) {
      (errorField || submit).focus();
      return;
    }
    submit.disabled = true;
    try {
      const { ok, data } = await api("POST", "/api/v1/orders", order);
      if (!ok) {
        // The server's refusal, word for word.
        const name = data.details?.field || Object.keys(data.details?.fields || {})[0] || null;
        showError([name, data.message, data.code]);
        return;
      }
      showOrder(data);
      notice.textContent = `Order ${data.id} accepted: ${data.side} ${data.quantity ?? `for ${data.quote_quantity} ${config.quote}`}` +
        `${data.price ? ` at ${data.price} ${config.quote}` : " at market"} (${data.status}).`;
      field("quantity").value = "";
      field("quote_quantity").value = "";
      updatePreview();
    } finally {
      submit.disabled = false;
    }
  });
}

function wireCancels() {
  const notice = document.getElementById("order-notice");
  document.getElementById("open-orders").addEventListener("submit", async (event) => {
    const match = /\/orders\/(\d+)\/cancel\//.exec(event.target.getAttribute("action") || "");
    if (!match) return;
    event.preventDefault();
    const id = Number(match[1]);
    event.target.querySelector("button").disabled = true;
    const { ok, data } = await api("DELETE", `/api/v1/orders/${id}`);
    if (ok) showOrder({ ...data, cancel_requested: true });
    else {
      notice.textContent = `Order ${id} was not cancelled: ${errorText(data)}`;
      loadOpenOrders();
    }
  });
  document.getElementById("cancel-all-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const { ok, data } = await api("POST", "/api/v1/orders/cancel-all", { market: M });
    if (!ok) {
      notice.textContent = errorText(data);
      return;
    }
    for (const id of data.order_ids) {
      const order = ordersSeen.get(id);
      if (order) showOrder({ ...order, cancel_requested: true });
    }
    notice.textContent = data.order_ids.length
      ? `Cancel requested for ${data.order_ids.length} open order(s) in ${M}.`
      : `You have no open orders in ${M}.`;
  });
}

// --- Start ----------------------------------------------------------------------------------

if (config.authenticated && form) {
  stream.subscribe("orders", {
    onData: (event) => event.market === M && showOrder(event),
    onReady: loadOpenOrders,
  });
  stream.subscribe("fills", {
    onData: (fill) => fill.market === M && upsert("fills", "trade-id", fill.trade_id, fillRow(fill), { limit: HISTORY_ROWS }),
    onReady: loadHistory,
  });
  stream.subscribe("balances", { onData: (event) => drawBalances(event.balances), onReady: loadBalances });
  wireOrderForm();
  wireCancels();
}

// Small helpers shared by the page scripts: building elements, times, and calling the REST API.

/** h("td", {class: "num"}, "1.5") -> <td class="num">1.5</td>.  Children are text or nodes (never HTML). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-11-22 07:49:16", in UTC like the server-rendered tables, from milliseconds or an ISO string. */
export function formatTime(value) {
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return (
    `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`
  );
}

/** "07:49:16" (UTC), for the recent trades list. */
export function formatClock(ms) {
  const date = new Date(ms);
  return `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
}

/** The page's data from {{ ...|json_script:"page-config" }}. */
export function pageConfig() {
  const node = document.getElementById("page-config");
  return node ? JSON.parse(node.textContent) : {};
}

function csrfToken() {
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

/**
 * Call the REST API with the session cookie (and the CSRF token for writes).
 * Resolves to {ok, status, data}; `data` is the parsed JSON body, for errors
 * {"code", "message", "details"} exactly as the server wrote it.
 */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { ok: false, status: 0, data: { code: "network_error", message: `The server could not be reached (${error.message}).` } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { code: "bad_response", message: `The server answered ${response.status} without a JSON body.` };
  }
  return { ok: response.ok, status: response.status, data };
}

/** The server's error as it wrote it: "message (code)". */
export function errorText(data) {
  if (!data) return "Unknown error.";
  return data.code ? `${data.message} (${data.code})` : String(data.message || data.detail || "Unknown error.");
}

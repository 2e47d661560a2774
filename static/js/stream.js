// One WebSocket to /ws for the whole page (docs/realtime.md).
//
// Components subscribe to stream names with two callbacks: onData(data) for
// each frame, and onReady() each time the server has confirmed the
// subscription (on first connect and after every reconnect), which is when a
// component fetches its REST snapshot so that nothing falls between snapshot
// and stream.  Subscriptions made in the same tick go out as one SUBSCRIBE
// (the server allows 10 messages a second).

/**
 * Where to connect: the page's own host at /ws, unless the server named another URL (the development
 * setup serves WebSockets from daphne on a port of its own).  On a loopback address the page's own
 * spelling of it is kept, so the session cookie (set for that host) goes along.
 */
export function socketUrl(configured) {
  if (!configured) return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const url = new URL(configured, location.href);
  const loopback = (host) => ["127.0.0.1", "localhost", "[::1]"].includes(host);
  if (loopback(url.hostname) && loopback(location.hostname)) url.hostname = location.hostname;
  return url.href;
}

export class StreamClient {
  constructor(url, { onStatus } = {}) {
    this.url = url;
    this.subscriptions = new Map(); // stream -> {onData, onReady}
    this.waiting = new Map(); // request id -> streams confirmed by its reply
    this.queued = new Set();
    this.nextId = 1;
    this.retryMs = 500;
    this.onStatus = onStatus || (() => {});
    this.connect();
  }

  connect() {
    this.onStatus("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.retryMs = 500;
      this.onStatus("live");
      this.queued = new Set(this.subscriptions.keys());
      this.flush();
    });
    socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.onStatus("reconnecting");
      this.waiting.clear();
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10000);
    });
  }

  get isOpen() {
    return this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  receive(message) {
    if (message.stream) {
      const subscription = this.subscriptions.get(message.stream);
      if (subscription) subscription.onData(message.data);
      return;
    }
    if (message.error) {
      console.warn("stream error", message.error.code, message.error.msg);
    }
    const streams = this.waiting.get(message.id);
    if (streams === undefined) return;
    this.waiting.delete(message.id);
    if (message.error) return;
    for (const stream of streams) {
      const subscription = this.subscriptions.get(stream);
      if (subscription && subscription.onReady) subscription.onReady();
    }
  }

  subscribe(stream, { onData, onReady }) {
    this.subscriptions.set(stream, { onData, onReady });
    this.queued.add(stream);
    queueMicrotask(() => this.flush());
  }

  unsubscribe(stream) {
    if (!this.subscriptions.delete(stream)) return;
    this.queued.delete(stream);
    if (this.isOpen) this.send("UNSUBSCRIBE", [stream]);
  }

  flush() {
    if (!this.queued.size || !this.isOpen) return;
    const streams = [...this.queued];
    this.queued.clear();
    this.waiting.set(this.send("SUBSCRIBE", streams), streams);
  }

  send(method, params) {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ method, params, id }));
    return id;
  }
}

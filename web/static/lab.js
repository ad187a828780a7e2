// The lab page: one client per pane, each a different transport to the same
// hub, with live counters and the raw HTTP exchanges the server recorded.
// Each transport's client is a small module in ./transports/, readable next
// to its Rust server; this file only wires them to the page.

import { ShortPollClient } from "./transports/short-poll.js";
import { LongPollClient } from "./transports/long-poll.js";
import { WebSocketClient } from "./transports/websocket.js";
import { SseClient } from "./transports/sse.js";
import { SocketIoClient } from "./transports/socketio.js";
import { AutoClient } from "./transports/auto.js";
import { measureClockOffset } from "./clock.js";

const MAX_RECEIVED_SHOWN = 100;
const MAX_WIRE_SHOWN = 30;

const CLIENTS = {
  "short-poll": (onEvent, pane) =>
    new ShortPollClient({ onEvent, interval: Number(pane.querySelector("[data-control=interval]").value) }),
  "long-poll": (onEvent, pane) =>
    new LongPollClient({ onEvent, timeout: Number(pane.querySelector("[data-control=timeout]").value) }),
  websocket: (onEvent) => new WebSocketClient({ onEvent }),
  sse: (onEvent) => new SseClient({ onEvent }),
  socketio: (onEvent) => new SocketIoClient({ onEvent }),
  auto: (onEvent, pane) => {
    const refused = new Set(
      [...pane.querySelectorAll("[data-refuse]:checked")].map((box) => box.dataset.refuse),
    );
    return new AutoClient({ onEvent, refused });
  },
};

class Pane {
  constructor(element, clockOffset) {
    this.element = element;
    this.clockOffset = clockOffset;
    // Server time when this pane started: older notifications are history
    // replayed to a newcomer, not deliveries whose delay means anything.
    this.startedAt = Date.now() + clockOffset;
    // Server time when the client last (re)started: notifications published
    // before it, after the page opened, were caught up after a pause, and
    // their delay is the pause's length, not the transport's.
    this.liveSince = this.startedAt;
    this.resetCounts();
    this.received = element.querySelector("[data-role=received]");
    this.title = element.querySelector("h2").textContent;
    this.status = element.querySelector("[data-role=status]");
    this.pauseButton = element.querySelector("[data-action=pause]");
    this.client = CLIENTS[element.dataset.transport]((event) => this.onEvent(event), element);
    this.running = false;

    this.pauseButton.addEventListener("click", () => (this.running ? this.stop() : this.start()));
    element.querySelector("[data-action=drop]").addEventListener("click", () => {
      this.client.drop();
      this.setRunning(false);
    });
    element.querySelector("[data-action=reset-counters]").addEventListener("click", () => {
      this.resetCounts();
      this.render();
    });
    element.querySelector("[data-control=interval]")?.addEventListener("change", (e) => {
      this.client.setInterval(Number(e.target.value));
    });
    element.querySelector("[data-control=timeout]")?.addEventListener("change", (e) => {
      this.client.setTimeout(Number(e.target.value));
    });
    for (const box of element.querySelectorAll("[data-refuse]")) {
      box.addEventListener("change", () => this.client.setRefused(box.dataset.refuse, box.checked));
    }
  }

  resetCounts() {
    this.counts = {
      requests: 0, empty: 0, bytes: 0, notifications: 0, caughtUp: 0, delivered: 0, latencySum: 0, lastLatency: null,
    };
  }

  start() {
    this.liveSince = Date.now() + this.clockOffset;
    this.client.start();
    this.setRunning(true);
  }

  stop() {
    this.client.stop();
    this.setRunning(false);
  }

  setRunning(running) {
    this.running = running;
    const action = running ? "Pause" : "Resume";
    this.pauseButton.textContent = action;
    this.pauseButton.setAttribute("aria-label", `${action} ${this.title}`);
  }

  onEvent(event) {
    switch (event.type) {
      case "status":
        this.status.textContent = event.text;
        this.status.dataset.state = event.state;
        // The auto pane says which transport it is on.
        if (event.state === "live" && event.transport) this.element.dataset.using = event.transport;
        break;
      case "request":
        this.counts.requests += 1;
        break;
      case "response":
        this.counts.bytes += event.bytes;
        if (event.empty) this.counts.empty += 1;
        break;
      case "notification":
        this.showNotification(event.notification, event.transport);
        break;
      case "reset":
        this.showReset(event.reason, event.epoch);
        break;
      case "wire":
        this.showPacket(event.direction, event.text);
        return;
    }
    this.render();
  }

  showNotification(notification, via) {
    const publishedAt = Date.parse(notification.published_at);
    const latency = Date.now() + this.clockOffset - publishedAt;
    const fromHistory = publishedAt < this.startedAt;
    const caughtUp = !fromHistory && publishedAt < this.liveSince;
    this.counts.notifications += 1;
    if (caughtUp) {
      this.counts.caughtUp += 1;
    } else if (!fromHistory) {
      this.counts.delivered += 1;
      this.counts.latencySum += latency;
      this.counts.lastLatency = latency;
    }

    const item = document.createElement("li");
    item.dataset.id = String(notification.id);
    // Text, never HTML: a notification is data, whatever it contains. Its
    // line breaks are kept, and its direction follows its own script.
    const text = document.createElement("span");
    text.className = "text";
    text.dir = "auto";
    text.textContent = notification.text;
    item.append(text);
    announce(notification);
    const meta = document.createElement("span");
    meta.className = "meta";
    const how = via ? ` via ${via}` : "";
    meta.textContent = fromHistory
      ? `#${notification.id}${how} · from history, published before this page opened`
      : caughtUp
        ? `#${notification.id}${how} · caught up after a pause, ${formatMs(latency)} after publish (not counted in latency)`
        : `#${notification.id}${how} · ${formatMs(latency)} after publish`;
    item.append(meta);
    this.prepend(item);
  }

  showReset(reason, epoch) {
    const item = document.createElement("li");
    item.className = "reset";
    item.textContent =
      reason === "epoch_changed"
        ? "reset (epoch_changed): the server's history started again, so ids start again at #1; what follows is all it has"
        : `reset (${reason}): some notifications may be missing; what follows is what the server still has`;
    this.prepend(item);
    if (reason === "epoch_changed") explainRestart(epoch);
  }

  /** A packet a library client saw, beside the HTTP exchanges the server recorded. */
  showPacket(direction, text) {
    const list = this.element.querySelector("[data-role=packets]");
    if (!list) return;
    const item = document.createElement("li");
    item.className = "packet";
    const arrow = { received: "← ", sent: "→ ", note: "· " }[direction] ?? "";
    const line = document.createElement("pre");
    line.textContent = `${arrow}${text}`;
    item.append(line);
    list.prepend(item);
    while (list.children.length > MAX_WIRE_SHOWN) list.lastElementChild.remove();
  }

  prepend(item) {
    this.received.prepend(item);
    while (this.received.children.length > MAX_RECEIVED_SHOWN) this.received.lastElementChild.remove();
  }

  render() {
    const c = this.counts;
    const set = (name, value) => {
      this.element.querySelector(`[data-counter=${name}]`).textContent = value;
    };
    set("requests", c.requests);
    set("empty", c.empty);
    set("bytes", c.bytes.toLocaleString("en"));
    set("notifications", c.notifications);
    set("caught-up", c.caughtUp);
    set("last-latency", c.lastLatency === null ? "–" : formatMs(c.lastLatency));
    set("mean-latency", c.delivered === 0 ? "–" : formatMs(c.latencySum / c.delivered));
  }
}

/**
 * Says once, in plain words, that the server this page talks to restarted:
 * which process answers now, and why every pane got a reset and ids begin
 * again at #1 (an in-memory hub starts a new history, a new epoch).
 */
let explainedEpoch = document.querySelector("[data-role=epoch]")?.textContent;
async function explainRestart(epoch) {
  if (!epoch || epoch === explainedEpoch) return;
  explainedEpoch = epoch;
  const before = document.querySelector("[data-role=process]").textContent;
  let now = { process: "a new process", epoch };
  try {
    now = await (await fetch("/api/time", { cache: "no-store" })).json();
  } catch {
    // The panes' own retries will show whether it answers.
  }
  document.querySelector("[data-role=process]").textContent = now.process;
  document.querySelector("[data-role=epoch]").textContent = now.epoch;
  const notice = document.querySelector("[data-role=restart]");
  notice.textContent =
    `The server restarted: ${before} stopped, ${now.process} answers now. Its hub started a new history ` +
    `(epoch ${now.epoch}), so ids begin again at #1 and notifications published before the restart are gone; ` +
    "each pane was told with a reset and shows what the new server has.";
  notice.hidden = false;
}

/** Tells screen readers of each new notification once, whichever pane shows it first. */
const announced = new Set();
const announcer = document.querySelector("[data-role=announce]");
function announce(notification) {
  const key = `${notification.id}@${notification.published_at}`;
  if (announced.has(key) || !announcer) return;
  announced.add(key);
  announcer.textContent = `New notification: ${notification.text}`;
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.max(0, Math.round(ms))} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Shows the exchanges the server recorded, newest first, in their pane. */
function followWire() {
  const lists = new Map();
  for (const list of document.querySelectorAll("[data-role=wire]")) {
    const transport = list.dataset.transport ?? list.closest("[data-transport]").dataset.transport;
    lists.set(transport, list);
  }
  const source = new EventSource("/api/wire");
  source.onmessage = (event) => {
    const record = JSON.parse(event.data);
    const list = lists.get(record.transport);
    if (!list) return;
    const item = document.createElement("li");
    const meta = document.createElement("div");
    meta.className = "meta";
    const held = record.held_ms >= 100 ? ` · held ${formatMs(record.held_ms)}` : "";
    meta.textContent = `${record.at}${held}`;
    const request = document.createElement("pre");
    request.textContent = record.request;
    const response = document.createElement("pre");
    response.textContent = record.response;
    item.append(meta, request, response);
    list.prepend(item);
    while (list.children.length > MAX_WIRE_SHOWN) list.lastElementChild.remove();
  };
}

const clockOffset = await measureClockOffset();
const panes = [...document.querySelectorAll(".pane")].map((element) => new Pane(element, clockOffset));
followWire();
for (const pane of panes) pane.start();

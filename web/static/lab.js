// The lab page: one client per pane, each a different transport to the same
// hub, with live counters and the raw HTTP exchanges the server recorded.
// Each transport's client is a small module in ./transports/, readable next
// to its Rust server; this file only wires them to the page.
//
// Each pane tags its requests with `lab=<page>.<pane>`, the page part chosen
// at random here. The server files the pane's connections under that tag:
// the page's wire feed shows its own exchanges only, with the bytes each
// pane's connections carried (counted at the socket, headers and framing
// included), and "Drop"/"Freeze" ask the server to break exactly that
// pane's connections, as a network would.

import { ShortPollClient } from "./transports/short-poll.js";
import { LongPollClient } from "./transports/long-poll.js";
import { WebSocketClient } from "./transports/websocket.js";
import { SseClient } from "./transports/sse.js";
import { SocketIoClient } from "./transports/socketio.js";
import { AutoClient } from "./transports/auto.js";
import { HEARTBEAT_S, silenceLimitMs } from "./transports/liveness.js";
import { measureClockOffset } from "./clock.js";

/** This page's tag: random, so that only this page can see or cut its panes' connections. */
const PAGE = crypto.randomUUID().replaceAll("-", "");
const tagOf = (pane) => `${PAGE}.${pane.dataset.transport}`;

const MAX_RECEIVED_SHOWN = 100;
const MAX_WIRE_SHOWN = 30;

const CLIENTS = {
  "short-poll": (onEvent, pane, params) =>
    new ShortPollClient({ onEvent, params, interval: Number(pane.querySelector("[data-control=interval]").value) }),
  "long-poll": (onEvent, pane, params) =>
    new LongPollClient({ onEvent, params, timeout: Number(pane.querySelector("[data-control=timeout]").value) }),
  websocket: (onEvent, pane, params) => new WebSocketClient({ onEvent, params, heartbeat: HEARTBEAT_S }),
  sse: (onEvent, pane, params) => new SseClient({ onEvent, params, heartbeat: HEARTBEAT_S }),
  socketio: (onEvent, pane, params) => new SocketIoClient({ onEvent, params }),
  auto: (onEvent, pane, params) => {
    const checked = (kind) =>
      new Set([...pane.querySelectorAll(`[data-${kind}]:checked`)].map((box) => box.dataset[kind]));
    return new AutoClient({ onEvent, params, refused: checked("refuse"), silenced: checked("silence") });
  },
};

/** What each pane's "live within" rule is, in words, for its summary line. */
const LIVENESS = {
  "short-poll": "each poll answered within 5 s",
  "long-poll": "each poll answered within its timeout + 5 s",
  websocket: `a hello within 5 s, then a message or heartbeat every ${silenceLimitMs(HEARTBEAT_S) / 1000} s`,
  sse: `a hello within 5 s, then an event or heartbeat every ${silenceLimitMs(HEARTBEAT_S) / 1000} s`,
  socketio: "the library's own: a ping every pingInterval, within pingTimeout",
  auto: "live within 5 s, or the next transport",
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
    this.tag = tagOf(element);
    this.client = CLIENTS[element.dataset.transport]((event) => this.onEvent(event), element, { lab: this.tag });
    this.running = false;
    this.lastHeard = null;
    this.wireBytes = { down: 0, up: 0 };
    this.wireBase = { down: 0, up: 0 };
    const liveness = element.querySelector("[data-role=liveness]");
    if (liveness) liveness.textContent = LIVENESS[element.dataset.transport];

    this.pauseButton.addEventListener("click", () => (this.running ? this.stop() : this.start()));
    element.querySelector("[data-action=drop]").addEventListener("click", () => this.cut("drop"));
    element.querySelector("[data-action=freeze]").addEventListener("click", () => this.cut("freeze"));
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
    for (const box of element.querySelectorAll("[data-silence]")) {
      box.addEventListener("change", () => this.client.setSilenced(box.dataset.silence, box.checked));
    }
  }

  /**
   * Asks the server to break this pane's connections: "drop" resets them (no
   * clean close), "freeze" makes the server go silent on them. The client
   * is not told: what it does next is its own reconnect or liveness logic.
   */
  async cut(how) {
    const note = this.element.querySelector("[data-role=cut]");
    let answer;
    try {
      const response = await fetch(`/api/lab/cut?lab=${this.tag}&how=${how}`, { method: "POST" });
      answer = await response.json();
      if (!response.ok) throw new Error(answer.message ?? response.status);
    } catch (error) {
      note.textContent = `The server could not ${how} the connection: ${error.message}`;
      return;
    }
    const n = answer.cut;
    const connections = n === 1 ? "1 connection" : `${n} connections`;
    note.textContent =
      n === 0
        ? `No open connection to ${how}: this client holds none between requests.`
        : how === "drop"
          ? `Reset ${connections}, no clean close: the client sees it lost and reconnects by itself.`
          : `Froze ${connections}: the server says nothing more on it and the connection stays open; ` +
            `the client's liveness rule (${LIVENESS[this.element.dataset.transport]}) has to notice.`;
  }

  /** The bytes the server counted on this pane's connections, since the counters were reset. */
  setWireBytes(down, up) {
    this.wireBytes = { down, up };
    this.render();
  }

  resetCounts() {
    if (this.wireBytes) this.wireBase = { ...this.wireBytes };
    this.counts = {
      requests: 0, empty: 0, bytes: 0, notifications: 0, caughtUp: 0, delivered: 0, latencySum: 0, lastLatency: null,
    };
  }

  start() {
    this.liveSince = Date.now() + this.clockOffset;
    this.client.start();
    this.setRunning(true);
  }

  stop(why = "paused") {
    this.client.stop();
    if (why !== "paused") this.status.textContent = why;
    this.setRunning(false);
  }

  /**
   * What this pane holds open for long on an HTTP/1.1 connection from the
   * browser's pool, if anything (WebSockets have their own).
   */
  heldConnection() {
    if (!this.running) return null;
    const transport = this.element.dataset.transport;
    const using = transport === "auto" ? this.element.dataset.using : transport;
    const held = { "long-poll": "a long poll", sse: "an SSE stream" }[using];
    if (held) return transport === "auto" ? `${held} (Auto)` : held;
    if (transport === "socketio" && /polling/.test(this.status.textContent)) return "Socket.IO's polling";
    return null;
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
      case "heard":
        this.lastHeard = Date.now();
        return;
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
    const down = this.wireBytes.down - this.wireBase.down;
    const up = this.wireBytes.up - this.wireBase.up;
    // Over HTTP/2 every pane of the tab shares one connection: its bytes
    // are no one pane's.
    const shared = this.element.querySelector("[data-counter=http-version]").textContent === "HTTP/2";
    set("wire-down", shared ? "shared (HTTP/2)" : down.toLocaleString("en"));
    set("wire-up", shared ? "shared (HTTP/2)" : up.toLocaleString("en"));
    set("notifications", c.notifications);
    set("caught-up", c.caughtUp);
    set("last-latency", c.lastLatency === null ? "–" : formatMs(c.lastLatency));
    set("mean-latency", c.delivered === 0 ? "–" : formatMs(c.latencySum / c.delivered));
    this.renderHeard();
  }

  renderHeard() {
    const heard = this.element.querySelector("[data-counter=heard]");
    if (!heard) return;
    heard.textContent = this.lastHeard === null ? "–" : `${Math.floor((Date.now() - this.lastHeard) / 1000)} s ago`;
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

/** One recorded exchange as a list item: when, how long held, request and response heads. */
function exchangeItem(record) {
  const item = document.createElement("li");
  const meta = document.createElement("div");
  meta.className = "meta";
  const held = record.held_ms >= 100 ? ` · held ${formatMs(record.held_ms)}` : "";
  const who = record.pane ? ` · ${record.pane}` : "";
  meta.textContent = `${record.at}${held}${who}`;
  const request = document.createElement("pre");
  request.textContent = record.request;
  const response = document.createElement("pre");
  response.textContent = record.response;
  item.append(meta, request, response);
  return item;
}

function prependBounded(list, item) {
  list.prepend(item);
  while (list.children.length > MAX_WIRE_SHOWN) list.lastElementChild.remove();
}

/**
 * Follows this page's exchanges: each into the Wire view of the pane that
 * made it, and the bytes the server counted into each pane. It asks every
 * second (`GET /api/wire/recent`) rather than holding a stream open: over
 * HTTP/1.1 a held stream would take one of the six connections the browser
 * allows per origin, shared by every tab.
 */
function followWire(panes) {
  const byPane = new Map(panes.map((pane) => [pane.element.dataset.transport, pane]));
  let after = 0;
  const show = (record) => {
    const pane = byPane.get(record.pane);
    if (!pane) return;
    // The version of the pane's latest request, from its request line: over
    // HTTPS most become HTTP/2, while a WebSocket stays on HTTP/1.1.
    const version = record.request.split("\r\n", 1)[0].split(" ").at(-1);
    pane.element.querySelector("[data-counter=http-version]").textContent = version.replace("HTTP/2.0", "HTTP/2");
    const list = pane.element.querySelector("[data-role=wire]");
    if (list) prependBounded(list, exchangeItem(record));
  };
  const ask = async () => {
    if (document.visibilityState === "hidden") return;
    try {
      const response = await fetch(`/api/wire/recent?lab=${PAGE}&after=${after}`, {
        cache: "no-store",
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) return;
      const recent = await response.json();
      recent.records.forEach(show);
      after = recent.last;
      for (const [name, bytes] of Object.entries(recent.bytes)) {
        byPane.get(name)?.setWireBytes(bytes.to_browser, bytes.from_browser);
      }
    } catch {
      // The next turn asks again; the panes say whether the server answers.
    }
  };
  const loop = async () => {
    await ask();
    setTimeout(loop, 1000);
  };
  loop();
}

/**
 * A hidden tab lets go of its connections and takes them up again, from
 * each pane's cursor, when it is shown: a background tab need not hold a
 * long poll and a stream nobody is watching (and browsers throttle it
 * anyway, chapter 7).
 */
function releaseWhenHidden(panes) {
  let released = [];
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      released = panes.filter((pane) => pane.running);
      for (const pane of released) pane.stop("tab hidden: connections released");
    } else {
      for (const pane of released) pane.start();
      released = [];
    }
    announceHeld();
  });
}

/**
 * Over HTTP/1.1 a browser opens at most six connections to one origin,
 * shared by every tab, and queues every other request until one is free.
 * The lab's tabs tell each other (BroadcastChannel) how many they hold open
 * for long polls and streams, and each says in plain words when together
 * they hold them all.
 */
const HTTP1_CONNECTIONS_PER_ORIGIN = 6;
const tabs = new Map();
let heldNow = () => [];
const channel = "BroadcastChannel" in window ? new BroadcastChannel("notify-lab") : null;
function announceHeld() {
  const held = document.visibilityState === "hidden" ? [] : heldNow();
  tabs.set(PAGE, { held, at: Date.now() });
  channel?.postMessage({ page: PAGE, held });
  explainLimit();
}
function explainLimit() {
  const notice = document.querySelector("[data-role=connection-limit]");
  if (!notice) return;
  const protocol = performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "http/1.1";
  const now = Date.now();
  for (const [page, tab] of tabs) if (now - tab.at > 5000) tabs.delete(page);
  const total = [...tabs.values()].reduce((sum, tab) => sum + tab.held.length, 0);
  if (protocol !== "http/1.1" || total < HTTP1_CONNECTIONS_PER_ORIGIN) {
    notice.hidden = true;
    return;
  }
  const mine = tabs.get(PAGE)?.held ?? [];
  notice.textContent =
    `The browser's connections to this server are all taken. Over HTTP/1.1 it opens at most ` +
    `${HTTP1_CONNECTIONS_PER_ORIGIN} per origin, shared by every tab, and ${tabs.size} tabs of this lab ` +
    `hold ${total} of them open (this one: ${mine.join(", ") || "none"}). Every other request — short ` +
    "polls, Socket.IO's handshake, page loads — waits in the browser's queue until one is free, which " +
    "may be never. Hide or close a tab (a hidden lab tab lets go of its connections), pause a pane, or " +
    "serve over HTTPS, where HTTP/2 carries every request on one connection.";
  notice.hidden = false;
}
function shareHeld(panes) {
  heldNow = () => panes.flatMap((pane) => pane.heldConnection() ?? []);
  channel?.addEventListener("message", (event) => {
    tabs.set(event.data.page, { held: event.data.held, at: Date.now() });
    explainLimit();
  });
  announceHeld();
  setInterval(announceHeld, 2000);
}

/**
 * Everyone's exchanges, every visitor's, which only the admin may watch:
 * the feed takes the admin token, so it is read with fetch (EventSource
 * cannot send a header) and split into events here.
 */
function followEveryone() {
  const form = document.querySelector("#everyone");
  if (!form) return;
  const list = form.parentElement.querySelector("[data-role=wire]");
  const state = form.querySelector("[data-role=everyone-state]");
  let controller = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    controller?.abort();
    controller = new AbortController();
    state.textContent = "connecting…";
    try {
      const response = await fetch("/api/wire", {
        headers: { Authorization: `Bearer ${form.token.value}` },
        signal: controller.signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        state.textContent = `${response.status}: ${body.message ?? "refused"}`;
        return;
      }
      state.textContent = "watching every client's exchanges";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").find((line) => line.startsWith("data: "));
          if (data) prependBounded(list, exchangeItem(JSON.parse(data.slice(6))));
        }
      }
      state.textContent = "the feed ended";
    } catch (error) {
      if (error.name !== "AbortError") state.textContent = `the feed failed: ${error.message}`;
    }
  });
}

const clockOffset = await measureClockOffset();
const panes = [...document.querySelectorAll(".pane")].map((element) => new Pane(element, clockOffset));
followWire(panes);
followEveryone();
releaseWhenHidden(panes);
shareHeld(panes);
for (const pane of panes) pane.start();
setInterval(() => panes.forEach((pane) => pane.renderHeard()), 1000);

// The lab page: one client per pane, each a different transport to the same
// hub, with live counters. Each transport's client is a small module in
// ./transports/, readable next to its Rust server; this file wires them to
// the panes. The raw HTTP exchanges the server recorded are wire-view.js's;
// what the tabs do together about the browser's connection pool, tabs.js's.
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
import { WebTransportClient } from "./transports/webtransport.js";
import { AutoClient } from "./transports/auto.js";
import { HEARTBEAT_S, LIVE_WITHIN_MS, silenceLimitMs } from "./transports/liveness.js";
import { formatMs, measureClockOffset } from "./clock.js";
import { followEveryone, followWire, prependBounded } from "./wire-view.js";
import { Tabs } from "./tabs.js";

/** This page's tag: random, so that only this page can see or cut its panes' connections. */
const PAGE = crypto.randomUUID().replaceAll("-", "");
const tagOf = (pane) => `${PAGE}.${pane.dataset.transport}`;

const MAX_RECEIVED_SHOWN = 100;

const CLIENTS = {
  "short-poll": (onEvent, pane, params) =>
    new ShortPollClient({ onEvent, params, interval: Number(pane.querySelector("[data-control=interval]").value) }),
  "long-poll": (onEvent, pane, params) =>
    new LongPollClient({ onEvent, params, timeout: Number(pane.querySelector("[data-control=timeout]").value) }),
  websocket: (onEvent, pane, params) => new WebSocketClient({ onEvent, params, heartbeat: HEARTBEAT_S }),
  sse: (onEvent, pane, params) => new SseClient({ onEvent, params, heartbeat: HEARTBEAT_S }),
  socketio: (onEvent, pane, params) =>
    new SocketIoClient({ onEvent, params, version: pane.querySelector("[data-control=client]").value }),
  webtransport: (onEvent, pane, params) => new WebTransportClient({ onEvent, params, heartbeat: HEARTBEAT_S }),
  auto: (onEvent, pane, params) => {
    const breakage = new Breakage(pane);
    const client = new AutoClient({ onEvent, params, setUp: (t, p) => breakage.setUp(t, p) });
    breakage.onChange = (transport, broken) => {
      // Leave a transport as soon as it breaks, and go back to the best one
      // as soon as one is mended.
      if (client.current === transport || !broken) client.restart();
    };
    return client;
  },
};

/** Where the requests of a refused transport go: a path the server answers 404. */
const REFUSED_PREFIX = "/refused";

/**
 * The Auto pane's knobs: transports to break on purpose, as a network can.
 * A refused one's requests go to a path the server refuses, as a proxy that
 * blocks WebSocket would, so the failure the client sees is a real one; a
 * silenced one's carry `lab_freeze=1`, which the server answers with
 * silence, as a proxy that buffers a stream or hangs an upgrade would.
 */
class Breakage {
  constructor(pane) {
    const checked = (kind) =>
      new Set([...pane.querySelectorAll(`[data-${kind}]:checked`)].map((box) => box.dataset[kind]));
    this.refused = checked("refuse");
    this.silenced = checked("silence");
    this.onChange = () => {};
    for (const [kind, set] of [["refuse", this.refused], ["silence", this.silenced]]) {
      for (const box of pane.querySelectorAll(`[data-${kind}]`)) {
        box.addEventListener("change", () => {
          const transport = box.dataset[kind];
          if (box.checked) set.add(transport);
          else set.delete(transport);
          this.onChange(transport, box.checked);
        });
      }
    }
  }

  /** The AutoClient's `setUp`: where a transport's requests go, and with what. */
  setUp(transport, params) {
    return {
      base: this.refused.has(transport) ? REFUSED_PREFIX : "",
      params: this.silenced.has(transport) ? { ...params, lab_freeze: 1 } : params,
    };
  }
}

/** What each pane's "live within" rule is, in words, for its summary line. */
const LIVE_S = LIVE_WITHIN_MS / 1000;
const SILENCE_S = silenceLimitMs(HEARTBEAT_S) / 1000;
const LIVENESS = {
  "short-poll": `each poll answered within ${LIVE_S} s`,
  "long-poll": `each poll answered within its timeout + ${LIVE_S} s`,
  websocket: `a hello within ${LIVE_S} s, then a message or heartbeat every ${SILENCE_S} s`,
  sse: `a hello within ${LIVE_S} s, then an event or heartbeat every ${SILENCE_S} s`,
  socketio: "the library's own: a ping every pingInterval, within pingTimeout",
  webtransport: `a hello within ${LIVE_S} s, then a message or heartbeat every ${SILENCE_S} s`,
  auto: `live within ${LIVE_S} s, or the next transport`,
};

/**
 * Says once, in plain words, that the server this page talks to restarted:
 * which process answers now, and why every pane got a reset and ids begin
 * again at #1 (an in-memory hub starts a new history, a new epoch).
 */
class RestartNotice {
  constructor() {
    this.explained = document.querySelector("[data-role=epoch]")?.textContent;
  }

  async explain(epoch) {
    if (!epoch || epoch === this.explained) return;
    this.explained = epoch;
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
}

/** Tells screen readers of each new notification once, whichever pane shows it first. */
class Announcer {
  constructor() {
    this.element = document.querySelector("[data-role=announce]");
    this.announced = new Set();
  }

  announce(notification) {
    const key = `${notification.id}@${notification.published_at}`;
    if (this.announced.has(key) || !this.element) return;
    this.announced.add(key);
    this.element.textContent = `New notification: ${notification.text}`;
  }
}

const restart = new RestartNotice();
const announcer = new Announcer();

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
    /** The HTTP version of the pane's latest request, as the server recorded it. */
    this.httpVersion = null;
    /** Which transport a client that has several is on (Auto's, or Socket.IO's engine). */
    this.using = null;
    const liveness = element.querySelector("[data-role=liveness]");
    if (liveness) liveness.textContent = LIVENESS[element.dataset.transport];

    this.pauseButton.addEventListener("click", () => (this.running ? this.stop() : this.start()));
    // WebTransport's pane has neither: the server cuts TCP connections.
    element.querySelector("[data-action=drop]")?.addEventListener("click", () => this.cut("drop"));
    element.querySelector("[data-action=freeze]")?.addEventListener("click", () => this.cut("freeze"));
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
    element.querySelector("[data-control=client]")?.addEventListener("change", (e) => {
      this.showPacket("note", `now on socket.io ${e.target.value}`);
      this.client.setVersion(e.target.value);
    });
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

  /** The HTTP version of the pane's latest request. */
  setHttpVersion(version) {
    this.httpVersion = version;
    this.element.querySelector("[data-counter=http-version]").textContent = version;
  }

  /** What the pane's latest HTTP answer was compressed with ("none", "gzip", "br"). */
  setCompression(encoding) {
    this.element.querySelector("[data-counter=compression]").textContent = encoding;
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
    const using = transport === "auto" ? this.using : transport;
    const held = { "long-poll": "a long poll", sse: "an SSE stream" }[using];
    if (held) return transport === "auto" ? `${held} (Auto)` : held;
    if (transport === "socketio" && this.using === "polling") return "Socket.IO's polling";
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
        // A new connection says afresh whether it is compressed.
        if (event.state === "connecting") this.element.querySelector("[data-counter=compression]").textContent = "none";
        this.status.textContent = event.text;
        this.status.dataset.state = event.state;
        // The Auto pane says which transport it is on, Socket.IO's which engine.
        if (event.state === "live" && (event.transport || event.engine)) {
          this.using = event.transport ?? event.engine;
          this.element.dataset.using = this.using;
        }
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
      case "http-version":
        // A WebTransport session's, which the server's wire view never sees.
        this.setHttpVersion(event.text);
        return;
      case "compression":
        // What the connection negotiated, as the browser reports it.
        this.element.querySelector("[data-counter=compression]").textContent = event.text;
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
    announcer.announce(notification);
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
    if (reason === "epoch_changed") restart.explain(epoch);
  }

  /** A packet a library client saw, beside the HTTP exchanges the server recorded. */
  showPacket(direction, text) {
    const list = this.element.querySelector("[data-role=packets]");
    if (!list) return;
    const item = document.createElement("li");
    item.className = "packet";
    const arrow = { received: "← ", sent: "→ ", note: "· ", payload: "⇠ " }[direction] ?? "";
    const line = document.createElement("pre");
    line.textContent = `${arrow}${text}`;
    item.append(line);
    prependBounded(list, item);
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
    const shared = this.httpVersion === "HTTP/2";
    // QUIC's packets are encrypted on one UDP socket for every session:
    // the server cannot file them under a pane.
    const quic = this.element.dataset.transport === "webtransport";
    const onWire = (bytes) => (quic ? "not seen (QUIC)" : shared ? "shared (HTTP/2)" : bytes.toLocaleString("en"));
    set("wire-down", onWire(down));
    set("wire-up", onWire(up));
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

const clockOffset = await measureClockOffset();
const panes = [...document.querySelectorAll(".pane")].map((element) => new Pane(element, clockOffset));
followWire(PAGE, panes);
followEveryone();
new Tabs(PAGE, panes).start();
for (const pane of panes) pane.start();
setInterval(() => panes.forEach((pane) => pane.renderHeard()), 1000);

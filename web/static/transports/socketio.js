// Socket.IO, the browser side of crates/socketio/src/notifications.rs,
// through the official client (vendored in /static/vendor/).
//
// The library does what the other modules here do by hand, and more: it
// opens an Engine.IO session over HTTP long-polling (the handshake answers
// a `sid` and a `pingInterval`), probes a WebSocket (`2probe`, `3probe`),
// switches to it (`5`), answers the server's heartbeats, and reconnects
// with backoff. What it does not do is resume: a reconnected socket gets
// only what is sent after it joins. So the connect `auth` is a function the
// client calls on every (re)connection, and it passes this page's cursor;
// the server replays from it.
//
// It runs on either of two clients: today's (4.8.4, Engine.IO 4), or the
// write-up's own of 2015 (1.3.5, Engine.IO 3), which has no `auth`: that
// one passes its cursor in the handshake's query string, set afresh before
// each reconnection, which the server reads when there is no `auth`.
//
// Events are those of every transport client (see cursor.js), plus
// {type: "wire", direction, text} for each Engine.IO packet and for each
// polling answer as it came (its framing), so that a page can show what the
// library puts on the wire.

import { io as today } from "../vendor/socket.io.esm.min.js";
import { Cursor, byteLength } from "./cursor.js";

/** The clients a page can choose, by version. */
export const CLIENT_VERSIONS = ["4.8.4", "1.3.5"];

/** socket.io 1.3.5 is a classic script that defines `io`: loaded once, when first asked for. */
let classic = null;
function loadClassic() {
  classic ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/static/vendor/socket.io-1.3.5.js";
    script.onload = () => resolve(globalThis.io);
    script.onerror = () => reject(new Error("could not load socket.io 1.3.5"));
    document.head.append(script);
  });
  return classic;
}

/**
 * A polling answer as it came, for the eye: Engine.IO 4 separates packets
 * with the byte 0x1e (shown ␞); Engine.IO 3's text payload prefixes each
 * with its length and `:`; its binary payload, what the 1.x clients get,
 * frames each as <type length 0xff> in bytes, shown here in angle brackets.
 */
export function showPayload(data) {
  if (typeof data === "string") return data.replaceAll("\u001e", "␞");
  const bytes = new Uint8Array(data);
  const parts = [];
  let at = 0;
  while (at < bytes.length) {
    const head = [bytes[at]];
    let length = 0;
    at += 1;
    while (at < bytes.length && bytes[at] !== 0xff) {
      head.push(bytes[at]);
      length = length * 10 + bytes[at];
      at += 1;
    }
    at += 1;
    const frame = head.map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const packet = bytes.subarray(at, at + length);
    at += length;
    const body = head[0] === 0 ? new TextDecoder().decode(packet) : `[${packet.length} binary bytes]`;
    parts.push(`<${frame} ff>${body}`);
  }
  return parts.join("");
}

const PACKET_TYPES = ["0", "1", "2", "3", "4", "5", "6"];
const TYPE_NUMBER = { open: 0, close: 1, ping: 2, pong: 3, message: 4, upgrade: 5, noop: 6 };

export class SocketIoClient {
  /** Options as for WebSocketClient, and `version`, one of CLIENT_VERSIONS. */
  constructor({ onEvent, cursor = new Cursor(), base = "", params = {}, version = CLIENT_VERSIONS[0] }) {
    this.onEvent = onEvent;
    this.params = params;
    this.cursor = cursor;
    this.base = base;
    this.version = version;
    this.socket = null;
    this.watched = null;
    /** Counts starts, so that a stop while 1.3.5 loads wins. */
    this.starts = 0;
  }

  start() {
    if (this.socket) return;
    const start = ++this.starts;
    this.socket = "starting";
    this.onEvent({ type: "status", state: "connecting", text: `socket.io ${this.version}: handshake over polling…` });
    if (this.version === "1.3.5") {
      loadClassic().then(
        (io) => start === this.starts && this.#open(this.#connectClassic(io)),
        (error) => start === this.starts && this.onEvent({ type: "status", state: "error", text: error.message }),
      );
    } else {
      this.#open(this.#connectToday());
    }
  }

  /** Switches to another client version, keeping the cursor. */
  setVersion(version) {
    if (version === this.version) return;
    const running = this.socket !== null;
    if (running) this.stop("switching client");
    this.version = version;
    if (running) this.start();
  }

  #connectToday() {
    return today(`${location.origin}${this.base}/`, {
      path: `${this.base}/socket.io/`,
      forceNew: true,
      query: this.params,
      // Called on every connection attempt: resume from where this page is.
      auth: (send) => send(this.cursor.after === null ? {} : { after: this.cursor.after, epoch: this.cursor.epoch }),
    });
  }

  /** As the write-up's page connects, with the cursor in the query: 1.x has no `auth`. */
  #connectClassic(io) {
    const query = () => {
      const cursor = this.cursor.after === null ? {} : { after: this.cursor.after, epoch: this.cursor.epoch };
      return { ...this.params, ...cursor };
    };
    const socket = io.connect(`${location.origin}${this.base}/`, {
      path: `${this.base}/socket.io`,
      forceNew: true,
      query: query(),
    });
    // Each reconnection opens a new Engine.IO session from these options.
    socket.io.on("reconnect_attempt", () => {
      socket.io.opts.query = query();
    });
    return socket;
  }

  #open(socket) {
    this.socket = socket;
    // The client creates its Engine.IO session at once, and a new one on
    // every reconnection; watch each from its first packet.
    this.#watchEngine(socket.io.engine);
    socket.io.on("reconnect_attempt", () => queueMicrotask(() => this.#watchEngine(socket.io.engine)));

    socket.on("hello", (hello) => {
      this.cursor.onHello(hello);
      const engine = socket.io.engine.transport.name;
      this.onEvent({ type: "status", state: "live", text: `connected over ${engine}`, engine });
    });
    socket.on("reset", (reset) => this.cursor.onReset(reset, this.onEvent));
    socket.on("notification", (notification) => this.cursor.onNotification(notification, this.onEvent));
    socket.on("disconnect", (reason) => {
      if (this.socket !== socket) return;
      // The server ends a socket itself only when it was too slow to keep
      // up; the library does not reconnect after that on its own, so this
      // client does, and its `auth` resumes from the cursor.
      if (reason === "io server disconnect") socket.connect();
      this.onEvent({ type: "status", state: "error", text: `disconnected (${reason}); reconnecting` });
    });
    socket.on("connect_error", (error) => {
      this.onEvent({ type: "status", state: "error", text: `cannot connect (${error.message}); retrying` });
    });
  }

  /** Disconnects; the cursor is kept for the next start. */
  stop(state = "paused") {
    const socket = this.socket;
    this.socket = null;
    this.starts += 1;
    if (socket !== "starting") socket?.disconnect();
    this.onEvent({ type: "status", state, text: state });
  }


  /** Counts requests and bytes, and reports every Engine.IO packet of one session. */
  #watchEngine(engine) {
    if (!engine || engine === this.watched) return;
    this.watched = engine;
    // The handshake, then one request per poll or one per WebSocket.
    this.onEvent({ type: "request" });
    engine.on("packet", (packet) => this.#received(packet, engine.transport.name));
    engine.on("packetCreate", (packet) => this.#wire("sent", packet));
    // Emitted once the probe was answered: the client sent 2probe on the
    // new WebSocket and the server answered 3probe.
    engine.on("upgrading", (transport) => {
      this.onEvent({ type: "request" });
      this.onEvent({ type: "wire", direction: "note", text: `probed a ${transport.name}: → 2probe ← 3probe` });
    });
    engine.on("upgrade", (transport) => {
      this.onEvent({ type: "wire", direction: "note", text: `upgraded to ${transport.name}: → 5, polling stops` });
      if (this.socket?.connected) {
        this.onEvent({ type: "status", state: "live", text: `connected over ${transport.name}`, engine: transport.name });
      }
    });
    this.#watchPolling(engine);
  }

  /**
   * Counts each long-poll request the polling transport makes, and shows
   * each polling answer whole, as it came, before the library splits it
   * into packets: the one place the generations' framings differ.
   */
  #watchPolling(engine) {
    const transport = engine.transport;
    if (transport?.name !== "polling") return;
    transport.on("poll", () => this.onEvent({ type: "request" }));
    transport.on("drain", () => this.onEvent({ type: "request" }));
    const onData = transport.onData;
    transport.onData = (data) => {
      const kind = typeof data === "string" ? "text" : "binary";
      const size = typeof data === "string" ? byteLength(data) : data.byteLength;
      this.onEvent({ type: "wire", direction: "payload", text: `polling answer, ${kind}, ${size} bytes: ${showPayload(data)}` });
      onData.call(transport, data);
    };
  }

  #received(packet, transport) {
    const text = this.#wire("received", packet);
    // A heartbeat carries nothing for the page: the closest thing to an empty
    // answer. Engine.IO's pings are packets the library sees, which is how it
    // notices a silent server by itself (pingInterval + pingTimeout).
    this.onEvent({ type: "response", bytes: byteLength(text), empty: packet.type === "ping", transport });
    this.onEvent({ type: "heard" });
  }

  #wire(direction, packet) {
    const type = TYPE_NUMBER[packet.type] ?? PACKET_TYPES.indexOf(packet.type);
    const data = typeof packet.data === "string" ? packet.data : packet.data ? "[binary]" : "";
    const text = `${type}${data}`;
    this.onEvent({ type: "wire", direction, text });
    return text;
  }
}

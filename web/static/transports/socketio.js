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
// Events are those of every transport client (see cursor.js), plus
// {type: "wire", direction, text} for each Engine.IO packet, so that a page
// can show what the library puts on the wire.

import { io } from "../vendor/socket.io.esm.min.js";
import { Cursor, byteLength } from "./cursor.js";

const PACKET_TYPES = ["0", "1", "2", "3", "4", "5", "6"];
const TYPE_NUMBER = { open: 0, close: 1, ping: 2, pong: 3, message: 4, upgrade: 5, noop: 6 };

export class SocketIoClient {
  /** Options as for WebSocketClient. */
  constructor({ onEvent, cursor = new Cursor(), base = "", params = {} }) {
    this.onEvent = onEvent;
    this.params = params;
    this.cursor = cursor;
    this.base = base;
    this.socket = null;
    this.watched = null;
  }

  start() {
    if (this.socket) return;
    const socket = io(`${location.origin}${this.base}/`, {
      path: `${this.base}/socket.io/`,
      forceNew: true,
      query: this.params,
      // Called on every connection attempt: resume from where this page is.
      auth: (send) => send(this.cursor.after === null ? {} : { after: this.cursor.after, epoch: this.cursor.epoch }),
    });
    this.socket = socket;
    this.onEvent({ type: "status", state: "connecting", text: "handshake over polling…" });
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
      this.onEvent({ type: "status", state: "error", text: `disconnected (${reason}); the library reconnects` });
    });
    socket.on("connect_error", (error) => {
      this.onEvent({ type: "status", state: "error", text: `cannot connect (${error.message}); retrying` });
    });
  }

  /** Disconnects; the cursor is kept for the next start. */
  stop(state = "paused") {
    const socket = this.socket;
    this.socket = null;
    socket?.disconnect();
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

  /** Counts each long-poll request the polling transport makes. */
  #watchPolling(engine) {
    const transport = engine.transport;
    if (transport?.name !== "polling") return;
    transport.on("poll", () => this.onEvent({ type: "request" }));
    transport.on("drain", () => this.onEvent({ type: "request" }));
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

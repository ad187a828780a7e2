// WebSocket push, the browser side of crates/websocket/src/lib.rs.
//
// One HTTP request upgrades to a WebSocket (101 Switching Protocols); then
// the server pushes a text frame per notification. The first frame is
// {"type":"hello"}, a {"type":"reset"} frame says the cursor could not be
// honoured, a {"type":"heartbeat"} frame (asked for with `heartbeat=<s>`)
// says the server is alive during a quiet spell, and frames without a
// `type` are notifications. If the socket closes unexpectedly, or stays
// silent longer than the heartbeat allows (liveness.js), the client
// reconnects with its cursor, so nothing published meanwhile is lost.
// It offers the server's subprotocol, `notify.v1`, which the server
// echoes: a server that did not speak it would not, and the browser would
// then refuse the connection rather than misread its frames. The browser
// offers permessage-deflate by itself; `socket.extensions` says whether the
// server took it, and the client reports that as {type: "compression"}.

import { Cursor, byteLength, queryWith } from "./cursor.js";
import { LIVE_WITHIN_MS, Watchdog } from "./liveness.js";

const MAX_BACKOFF_MS = 10_000;
/** The WebSocket subprotocol of docs/protocol.md (`SUBPROTOCOL` in crates/websocket). */
export const SUBPROTOCOL = "notify.v1";

export class WebSocketClient {
  /**
   * Options as for ShortPollClient; `reconnect: false` leaves reconnecting
   * to the caller; `heartbeat` (seconds) asks the server for heartbeats and
   * turns on the silence rule.
   */
  constructor({ onEvent, cursor = new Cursor(), base = "", reconnect = true, params = {}, heartbeat = null }) {
    this.onEvent = onEvent;
    this.cursor = cursor;
    this.base = base;
    this.reconnect = reconnect;
    this.params = params;
    this.heartbeat = heartbeat;
    this.socket = null;
    this.running = false;
    this.backoff = 500;
    this.retryTimer = null;
    this.watchdog = new Watchdog((reason) => this.#lost(this.socket, reason));
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.#connect();
  }

  /** Closes the socket; the cursor is kept for the next start. */
  stop(state = "paused") {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.watchdog.disarm();
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, state);
    this.onEvent({ type: "status", state, text: state });
  }

  #connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = queryWith(this.cursor, { ...this.params, heartbeat: this.heartbeat });
    const socket = new WebSocket(`${scheme}://${location.host}${this.base}/api/ws?${query}`, SUBPROTOCOL);
    this.socket = socket;
    this.onEvent({ type: "request" });
    this.onEvent({ type: "status", state: "connecting", text: "handshake…" });
    this.watchdog.arm(LIVE_WITHIN_MS, `no hello within ${LIVE_WITHIN_MS / 1000} s`);

    socket.onopen = () => this.onEvent({ type: "compression", text: socket.extensions || "none" });
    socket.onmessage = (event) => {
      this.onEvent({ type: "response", bytes: byteLength(event.data), empty: false });
      this.onEvent({ type: "heard" });
      this.watchdog.heard(this.heartbeat);
      if (this.cursor.onPush(JSON.parse(event.data), this.onEvent) === "hello") {
        this.backoff = 500;
        this.onEvent({ type: "status", state: "live", text: "connected" });
      }
    };

    socket.onclose = (event) => this.#lost(socket, describeClose(event));
  }

  /** The connection is gone (closed, or silent too long): report it, and reconnect. */
  #lost(socket, why) {
    if (!socket || this.socket !== socket) return; // closed on purpose by stop()
    this.socket = null;
    this.watchdog.disarm();
    socket.onclose = null;
    socket.close();
    if (!this.reconnect) {
      this.running = false;
      this.onEvent({ type: "status", state: "error", text: why });
      return;
    }
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.onEvent({ type: "status", state: "error", text: `${why}; reconnecting in ${wait / 1000} s` });
    this.retryTimer = setTimeout(() => this.running && this.#connect(), wait);
  }
}

/** A close code in words: what a learner should make of it. */
function describeClose(event) {
  const words = {
    1000: "closed normally",
    1001: "the server is going away",
    1006: "connection lost without a close frame",
    1008: "closed by the server's policy",
    1009: "a message was too large",
  }[event.code] ?? "closed";
  const reason = event.reason ? `: ${event.reason}` : "";
  return `${words} (${event.code}${reason})`;
}

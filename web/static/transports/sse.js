// Server-Sent Events, the browser side of crates/sse/src/lib.rs.
//
// new EventSource("/api/sse?after=<cursor>&epoch=<epoch>") opens one
// response that never ends; each notification is an event whose `id:` is
// "<epoch>:<id>". If the connection drops, the browser reconnects by itself
// after the server's `retry:` and sends the last id as Last-Event-ID, so the
// server resumes exactly there: resume is built into the browser.
//
// What the browser does not do is notice a stream that stays open and
// silent (a proxy that buffers it, a server that hangs). So this client asks
// for `heartbeat` events during quiet spells and closes and reopens a
// stream that says nothing for too long (liveness.js), or whose `hello`
// never comes.

import { Cursor, byteLength, queryWith } from "./cursor.js";
import { LIVE_WITHIN_MS, Watchdog } from "./liveness.js";

const REOPEN_AFTER_MS = 2000;

export class SseClient {
  /** Options as for WebSocketClient. */
  constructor({ onEvent, cursor = new Cursor(), base = "", reconnect = true, params = {}, heartbeat = null }) {
    this.onEvent = onEvent;
    this.cursor = cursor;
    this.base = base;
    this.reconnect = reconnect;
    this.params = params;
    this.heartbeat = heartbeat;
    this.source = null;
    this.reopenTimer = null;
    this.watchdog = new Watchdog((reason) => this.#failed(this.source, reason));
  }

  start() {
    if (this.source) return;
    clearTimeout(this.reopenTimer);
    const query = queryWith(this.cursor, { ...this.params, heartbeat: this.heartbeat });
    const source = new EventSource(`${this.base}/api/sse?${query}`);
    this.source = source;
    this.onEvent({ type: "request" });
    this.onEvent({ type: "status", state: "connecting", text: "opening the stream…" });
    this.watchdog.arm(LIVE_WITHIN_MS, `no hello within ${LIVE_WITHIN_MS / 1000} s`);

    const heard = (event) => {
      this.onEvent({ type: "response", bytes: byteLength(event.data), empty: false });
      this.onEvent({ type: "heard" });
      this.watchdog.heard(this.heartbeat);
    };
    source.addEventListener("hello", (event) => {
      heard(event);
      this.cursor.onHello(JSON.parse(event.data));
      this.onEvent({ type: "status", state: "live", text: "streaming" });
    });
    source.addEventListener("heartbeat", heard);
    source.addEventListener("reset", (event) => {
      heard(event);
      this.cursor.onReset(JSON.parse(event.data), this.onEvent);
    });
    source.onmessage = (event) => {
      heard(event);
      this.cursor.onNotification(JSON.parse(event.data), this.onEvent);
    };
    source.onerror = () => {
      if (this.source !== source) return;
      if (this.reconnect && source.readyState === EventSource.CONNECTING) {
        // The browser retries by itself, with Last-Event-ID; it too must
        // show a hello in time.
        this.onEvent({ type: "request" });
        this.onEvent({ type: "status", state: "connecting", text: "reconnecting (Last-Event-ID)…" });
        this.watchdog.arm(LIVE_WITHIN_MS, `no hello within ${LIVE_WITHIN_MS / 1000} s`);
        return;
      }
      this.#failed(source, "the stream failed and the browser gave up");
    };
  }

  /** Closes the stream; the cursor is kept for the next start. */
  stop(state = "paused") {
    clearTimeout(this.reopenTimer);
    this.watchdog.disarm();
    this.source?.close();
    this.source = null;
    this.onEvent({ type: "status", state, text: state });
  }

  /** The stream failed or went silent: close it, and open a new one from the cursor. */
  #failed(source, why) {
    if (!source || this.source !== source) return;
    source.close();
    this.source = null;
    this.watchdog.disarm();
    if (!this.reconnect) {
      this.onEvent({ type: "status", state: "error", text: why });
      return;
    }
    this.onEvent({ type: "status", state: "error", text: `${why}; reopening in ${REOPEN_AFTER_MS / 1000} s` });
    this.reopenTimer = setTimeout(() => this.source === null && this.start(), REOPEN_AFTER_MS);
  }
}

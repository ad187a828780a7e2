// Server-Sent Events, the browser side of crates/sse/src/lib.rs.
//
// new EventSource("/api/sse?after=<cursor>&epoch=<epoch>") opens one
// response that never ends; each notification is an event whose `id:` is
// "<epoch>:<id>". If the connection drops, the browser reconnects by itself
// after the server's `retry:` and sends the last id as Last-Event-ID, so the
// server resumes exactly there: resume is built into the browser.

import { Cursor, byteLength } from "./cursor.js";

export class SseClient {
  /** Options as for ShortPollClient; `reconnect: false` leaves reconnecting to the caller. */
  constructor({ onEvent, cursor = new Cursor(), base = "", reconnect = true }) {
    this.onEvent = onEvent;
    this.cursor = cursor;
    this.base = base;
    this.reconnect = reconnect;
    this.source = null;
  }

  start() {
    if (this.source) return;
    const source = new EventSource(`${this.base}/api/sse?${this.cursor.query()}`);
    this.source = source;
    this.onEvent({ type: "request" });
    this.onEvent({ type: "status", state: "connecting", text: "opening the stream…" });

    source.addEventListener("hello", (event) => {
      this.onEvent({ type: "response", bytes: byteLength(event.data), empty: false });
      this.cursor.epoch ??= JSON.parse(event.data).epoch;
      this.onEvent({ type: "status", state: "live", text: "streaming" });
    });
    source.addEventListener("reset", (event) => {
      this.onEvent({ type: "response", bytes: byteLength(event.data), empty: false });
      const reset = JSON.parse(event.data);
      this.cursor.reset(reset.epoch);
      this.onEvent({ type: "reset", reason: reset.reset_reason, epoch: reset.epoch });
    });
    source.onmessage = (event) => {
      this.onEvent({ type: "response", bytes: byteLength(event.data), empty: false });
      const notification = JSON.parse(event.data);
      if (this.cursor.accept(notification)) this.onEvent({ type: "notification", notification });
    };
    source.onerror = () => {
      if (this.source !== source) return;
      if (this.reconnect && source.readyState === EventSource.CONNECTING) {
        // The browser retries by itself, with Last-Event-ID.
        this.onEvent({ type: "request" });
        this.onEvent({ type: "status", state: "connecting", text: "reconnecting (Last-Event-ID)…" });
        return;
      }
      source.close();
      this.source = null;
      this.onEvent({ type: "status", state: "error", text: "the stream failed and the browser gave up; reopening in 2 s" });
      if (this.reconnect) setTimeout(() => this.source === null && this.start(), 2000);
    };
  }

  /** Closes the stream; the cursor is kept for the next start. */
  stop(state = "paused") {
    this.source?.close();
    this.source = null;
    this.onEvent({ type: "status", state, text: state });
  }

  /** Closes the stream now, as a lost connection would. */
  drop() {
    this.stop("dropped");
  }
}

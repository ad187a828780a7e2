// Long polling, the browser side of crates/long-poll/src/lib.rs.
//
// GET /api/long-poll?after=<cursor>&epoch=<epoch>&timeout=<s>. The server
// holds the request until something newer than the cursor exists or the
// timeout passes; then the browser asks again at once. One request per
// notification (plus one per timeout), delivered as soon as it is published.
// The cursor is what makes the moment between two requests lossless.

import { Cursor, applyPollAnswer, byteLength, sleep } from "./cursor.js";

const MAX_BACKOFF_MS = 10_000;

export class LongPollClient {
  /** Options as for ShortPollClient, with `timeout` in seconds instead of an interval. */
  constructor({ onEvent, timeout = 25, cursor = new Cursor(), base = "" }) {
    this.onEvent = onEvent;
    this.timeout = timeout;
    this.cursor = cursor;
    this.base = base;
    this.controller = null;
  }

  setTimeout(seconds) {
    this.timeout = seconds;
  }

  start() {
    if (this.controller) return;
    const controller = new AbortController();
    this.controller = controller;
    this.#loop(controller.signal);
  }

  /** Stops asking; the held request is abandoned, the cursor kept. */
  stop(state = "paused") {
    this.controller?.abort();
    this.controller = null;
    this.onEvent({ type: "status", state, text: state });
  }

  /** Aborts the held request now, as a lost connection would. */
  drop() {
    this.stop("dropped");
  }

  async #loop(signal) {
    let backoff = 500;
    this.onEvent({ type: "status", state: "connecting", text: "first request…" });
    while (!signal.aborted) {
      try {
        this.onEvent({ type: "request" });
        const query = `${this.cursor.query()}&timeout=${this.timeout}`;
        const response = await fetch(`${this.base}/api/long-poll?${query}`, { signal, cache: "no-store" });
        const text = await response.text();
        if (!response.ok) throw new Error(`${response.status}: ${text}`);
        const body = JSON.parse(text);
        this.onEvent({ type: "response", bytes: byteLength(text), empty: body.notifications.length === 0 });
        this.onEvent({ type: "status", state: "live", text: `held up to ${this.timeout} s` });
        applyPollAnswer(this.cursor, body, this.onEvent);
        backoff = 500;
      } catch (error) {
        if (signal.aborted) return;
        this.onEvent({ type: "status", state: "error", text: `no answer from the server (${error.message}); retrying` });
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}

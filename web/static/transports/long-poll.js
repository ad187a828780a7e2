// Long polling, the browser side of crates/long-poll/src/lib.rs.
//
// GET /api/long-poll?after=<cursor>&epoch=<epoch>&timeout=<s>. The server
// holds the request until something newer than the cursor exists or the
// timeout passes; then the browser asks again at once. One request per
// notification (plus one per timeout), delivered as soon as it is published.
// The cursor is what makes the moment between two requests lossless.
//
// The first request asks with timeout=0, which the server answers at once:
// the client learns that the path works (and where the history stands)
// without waiting a whole hold. Every request must be answered within its
// timeout plus LIVE_WITHIN_MS, or the client gives up on it and asks again:
// a held request is otherwise the one thing that cannot tell a quiet server
// from a dead one.

import { Cursor, byteLength, queryWith, sleep } from "./cursor.js";
import { LIVE_WITHIN_MS } from "./liveness.js";

const MAX_BACKOFF_MS = 10_000;

export class LongPollClient {
  /** Options as for ShortPollClient, with `timeout` in seconds instead of an interval. */
  constructor({ onEvent, timeout = 25, cursor = new Cursor(), base = "", params = {} }) {
    this.onEvent = onEvent;
    this.timeout = timeout;
    this.cursor = cursor;
    this.base = base;
    this.params = params;
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

  async #loop(signal) {
    let backoff = 500;
    let first = true;
    this.onEvent({ type: "status", state: "connecting", text: "first request…" });
    while (!signal.aborted) {
      const timeout = first ? 0 : this.timeout;
      const limitMs = timeout * 1000 + LIVE_WITHIN_MS;
      try {
        this.onEvent({ type: "request" });
        const query = queryWith(this.cursor, { ...this.params, timeout });
        const response = await fetch(`${this.base}/api/long-poll?${query}`, {
          signal: AbortSignal.any([signal, AbortSignal.timeout(limitMs)]),
          cache: "no-store",
        });
        const text = await response.text();
        if (!response.ok) throw new Error(`${response.status}: ${text}`);
        const body = JSON.parse(text);
        this.onEvent({ type: "response", bytes: byteLength(text), empty: body.notifications.length === 0 });
        this.onEvent({ type: "heard" });
        this.onEvent({ type: "status", state: "live", text: `held up to ${this.timeout} s` });
        this.cursor.onPollAnswer(body, this.onEvent);
        backoff = 500;
        first = false;
      } catch (error) {
        if (signal.aborted) return;
        const why = error.name === "TimeoutError" ? `no answer within ${limitMs / 1000} s` : `no answer from the server (${error.message})`;
        this.onEvent({ type: "status", state: "error", text: `${why}; retrying` });
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}

// Short polling, the browser side of crates/short-poll/src/lib.rs.
//
// Every `interval` ms: GET /api/poll?after=<cursor>&epoch=<epoch>. The
// server answers at once, usually with an empty list. Simple, works through
// anything, and costs a request per client per interval whether or not
// anything happened; a notification waits interval/2 on average. A poll
// not answered within LIVE_WITHIN_MS is abandoned, and the next one tried.

import { Cursor, byteLength, queryWith, sleep } from "./cursor.js";
import { LIVE_WITHIN_MS } from "./liveness.js";

export class ShortPollClient {
  /**
   * onEvent: receives the events described in cursor.js.
   * cursor: shared with other clients (the auto client) or a new one.
   * base: a path prefix for the endpoint ("" normally).
   * params: extra query parameters for every request.
   */
  constructor({ onEvent, interval = 2000, cursor = new Cursor(), base = "", params = {} }) {
    this.onEvent = onEvent;
    this.params = params;
    this.interval = interval;
    this.cursor = cursor;
    this.base = base;
    this.controller = null;
  }

  setInterval(ms) {
    this.interval = ms;
  }

  start() {
    if (this.controller) return;
    const controller = new AbortController();
    this.controller = controller;
    this.onEvent({ type: "status", state: "connecting", text: "first poll…" });
    this.#loop(controller.signal);
  }

  /** Stops polling; the cursor is kept for the next start. */
  stop(state = "paused") {
    this.controller?.abort();
    this.controller = null;
    this.onEvent({ type: "status", state, text: state });
  }

  async #loop(signal) {
    while (!signal.aborted) {
      await this.#pollOnce(signal);
      await sleep(this.interval, signal);
    }
  }

  async #pollOnce(signal) {
    try {
      this.onEvent({ type: "request" });
      const response = await fetch(`${this.base}/api/poll?${queryWith(this.cursor, this.params)}`, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(LIVE_WITHIN_MS)]),
        cache: "no-store",
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${response.status}: ${text}`);
      const body = JSON.parse(text);
      this.onEvent({ type: "response", bytes: byteLength(text), empty: body.notifications.length === 0 });
      this.onEvent({ type: "heard" });
      this.onEvent({ type: "status", state: "live", text: `polling every ${this.interval / 1000} s` });
      this.cursor.onPollAnswer(body, this.onEvent);
    } catch (error) {
      if (signal.aborted) return;
      const why = error.name === "TimeoutError" ? `no answer within ${LIVE_WITHIN_MS / 1000} s` : `no answer from the server (${error.message})`;
      this.onEvent({ type: "status", state: "error", text: `${why}; polling on` });
    }
  }
}

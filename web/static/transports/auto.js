// A client that picks the best transport that works, as SignalR and
// Centrifugo do: WebTransport where the server and the browser have it,
// then WebSocket, then Server-Sent Events, then long polling, then short
// polling. (socket.io goes the other way: it starts with long polling
// and upgrades; chapter 8 says why.) All of them share one cursor, so a switch neither
// loses nor repeats a notification.
//
// A transport that fails before it is live is skipped for the next one; a
// connection that is lost after being live makes the client start again from
// the best transport, after an exponential backoff with equal jitter (so
// that a thousand browsers that lost the same server do not return in
// lockstep).
//
// A transport that hangs instead of failing (a proxy that buffers a stream
// or swallows an upgrade) is got past by the rule every client here keeps,
// "live within LIVE_WITHIN_MS, or move on" (liveness.js). `setUp`, if
// given, may change where a transport's requests go (`base`) and what they
// carry (`params`): the lab uses it to break transports on purpose.

import { Cursor } from "./cursor.js";
import { HEARTBEAT_S } from "./liveness.js";
import { WebSocketClient } from "./websocket.js";
import { WebTransportClient, webtransportTarget } from "./webtransport.js";
import { SseClient } from "./sse.js";
import { LongPollClient } from "./long-poll.js";
import { ShortPollClient } from "./short-poll.js";

/** Every transport, best first; `order()` leaves out what this page cannot use. */
export const ORDER = ["webtransport", "websocket", "sse", "long-poll", "short-poll"];
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 15_000;

const FACTORIES = {
  webtransport: (options) => new WebTransportClient({ ...options, reconnect: false, heartbeat: HEARTBEAT_S }),
  websocket: (options) => new WebSocketClient({ ...options, reconnect: false, heartbeat: HEARTBEAT_S }),
  sse: (options) => new SseClient({ ...options, reconnect: false, heartbeat: HEARTBEAT_S }),
  "long-poll": (options) => new LongPollClient({ ...options, timeout: 25 }),
  "short-poll": (options) => new ShortPollClient({ ...options, interval: 2000 }),
};

export class AutoClient {
  constructor({ onEvent, params = {}, setUp = (transport, params) => ({ base: "", params }) }) {
    this.onEvent = onEvent;
    this.params = params;
    this.setUp = setUp;
    this.cursor = new Cursor();
    this.client = null;
    this.transport = null;
    this.running = false;
    this.backoff = FIRST_BACKOFF_MS;
    this.retryTimer = null;
    // WebTransport only where the server serves it and the browser has it.
    this.order = ORDER.filter((t) => t !== "webtransport" || webtransportTarget() !== null);
  }

  /** The transport in use, or null. */
  get current() {
    return this.transport;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.#tryFrom(0);
  }

  stop(state = "paused") {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.#closeCurrent();
    this.onEvent({ type: "status", state, text: state });
  }

  /** Leaves the transport in use and starts again from the best one. */
  restart() {
    if (!this.running) return;
    clearTimeout(this.retryTimer);
    this.#closeCurrent();
    this.#tryFrom(0);
  }

  #closeCurrent() {
    const client = this.client;
    this.client = null;
    this.transport = null;
    client?.stop("paused");
  }

  #tryFrom(index) {
    if (!this.running) return;
    if (index >= this.order.length) {
      // Nothing worked: wait, then start again from the best.
      const wait = jitter(this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.onEvent({ type: "status", state: "error", text: `no transport works; retrying in ${(wait / 1000).toFixed(1)} s` });
      this.retryTimer = setTimeout(() => this.#tryFrom(0), wait);
      return;
    }
    const transport = this.order[index];
    let live = false;
    const onEvent = (event) => {
      if (this.client !== client) return; // a client we already left
      if (event.type !== "status") {
        this.onEvent({ ...event, transport });
        return;
      }
      if (event.state === "live") {
        live = true;
        this.backoff = FIRST_BACKOFF_MS;
        this.onEvent({ type: "status", state: "live", text: `on ${transport}`, transport });
      } else if (event.state === "error") {
        this.#closeCurrent();
        if (live) {
          // Lost after working: back to the best transport, after a pause.
          const wait = jitter(this.backoff);
          this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
          this.onEvent({ type: "status", state: "connecting", text: `${transport} lost; retrying in ${(wait / 1000).toFixed(1)} s` });
          this.retryTimer = setTimeout(() => this.#tryFrom(0), wait);
        } else {
          this.onEvent({ type: "status", state: "connecting", text: `${transport} failed; trying the next` });
          this.#tryFrom(index + 1);
        }
      }
    };
    const { base, params } = this.setUp(transport, this.params);
    const client = FACTORIES[transport]({ onEvent, cursor: this.cursor, base, params });
    this.client = client;
    this.transport = transport;
    this.onEvent({ type: "status", state: "connecting", text: `trying ${transport}…`, transport });
    client.start();
  }
}

/** Equal jitter: a random wait between half and all of `ms`, never less than half. */
function jitter(ms) {
  return ms / 2 + Math.random() * (ms / 2);
}

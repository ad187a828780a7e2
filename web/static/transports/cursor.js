// Where a client is in the hub's history, and the one rule that keeps
// delivery exact: remember the epoch and the last id seen, send them back as
// `after` and `epoch` on every request or reconnect, and drop any id already
// seen. A reset (from the server) means "you missed something": forget the
// old position and take what follows.
//
// The messages are those of docs/protocol.md; a reset's reason is read from
// `reset_reason`, its name in every message.
//
// Every transport client emits the same events to its `onEvent` callback:
//   {type: "status", state: "connecting" | "live" | "paused" | "dropped" | "error", text}
//   {type: "request"}                         an HTTP request (or WebSocket handshake) was made
//   {type: "response", bytes, empty}          an answer or message arrived
//   {type: "notification", notification}      a notification, each id once, in order
//   {type: "reset", reason, epoch}            the server could not honour the cursor
//   {type: "heard"}                           the server showed it is alive (any message or answer)
//
// Every client also takes `params`, extra query parameters for its requests
// (the lab tags each pane's requests with `lab=<page>.<pane>`).

export class Cursor {
  constructor() {
    this.epoch = null;
    this.after = null;
  }

  /** The query string for the next request: `after=ID&epoch=E`, or nothing for a newcomer. */
  query() {
    const params = new URLSearchParams();
    if (this.after !== null) params.set("after", String(this.after));
    if (this.epoch !== null) params.set("epoch", this.epoch);
    return params.toString();
  }

  /** True when `notification` is new to this client; moves the cursor past it. */
  accept(notification) {
    if (this.after !== null && notification.id <= this.after) return false;
    this.after = notification.id;
    return true;
  }

  /** After a reset: a new position in `epoch`, with nothing seen yet. */
  reset(epoch) {
    this.epoch = epoch;
    this.after = null;
  }
}

/** The query string of a request: the cursor's, then each of `params` that is set. */
export function queryWith(cursor, params = {}) {
  const query = new URLSearchParams(cursor.query());
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(name, String(value));
  }
  return query.toString();
}

/** Applies a short- or long-poll answer to `cursor`, emitting what it brings. */
export function applyPollAnswer(cursor, body, emit) {
  if (body.reset) {
    cursor.reset(body.epoch);
    emit({ type: "reset", reason: body.reset_reason, epoch: body.epoch });
  }
  cursor.epoch = body.epoch;
  for (const notification of body.notifications) {
    if (cursor.accept(notification)) emit({ type: "notification", notification });
  }
  cursor.after = body.cursor;
}

/** The UTF-8 size of a string: what came over the wire as the body. */
export function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

/** A pause that ends early when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

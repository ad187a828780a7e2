// Where a client is in the hub's history, and the one rule that keeps
// delivery exact: remember the epoch and the last id seen, send them back as
// `after` and `epoch` on every request or reconnect, and drop any id already
// seen. A reset (from the server) means "you missed something": forget the
// old position and take what follows. Every transport client hands what the
// server sent to the Cursor (`onHello`, `onReset`, `onNotification`, or
// `onPush` and `onPollAnswer` for a whole message or answer), which keeps
// the rule and emits what the page sees.
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

  /**
   * A push connection's `hello`: the epoch this client reads, if it had
   * none, and for a client that has seen nothing yet in it, where the
   * replay starts — the cursor to come back with should the connection drop
   * before any notification arrives (docs/protocol.md).
   */
  onHello(hello) {
    this.epoch ??= hello.epoch;
    if (this.after === null && this.epoch === hello.epoch) this.after = hello.cursor;
  }

  /** A `reset` message: start over in its epoch, and tell the page. */
  onReset(reset, emit) {
    this.reset(reset.epoch);
    emit({ type: "reset", reason: reset.reset_reason, epoch: reset.epoch });
  }

  /** A notification: handed to the page once, in order, or dropped if seen. */
  onNotification(notification, emit) {
    if (this.accept(notification)) emit({ type: "notification", notification });
  }

  /**
   * Any message a push connection carries (a WebSocket frame, an SSE event's
   * data), by its `type`: a notification has none. Returns the type, or
   * "notification".
   */
  onPush(message, emit) {
    switch (message.type) {
      case "hello":
        this.onHello(message);
        break;
      case "reset":
        this.onReset(message, emit);
        break;
      case undefined:
        this.onNotification(message, emit);
        return "notification";
      // A heartbeat, or a type this client does not know: ignored.
    }
    return message.type;
  }

  /** A short- or long-poll answer: its reset, then its notifications, then its cursor. */
  onPollAnswer(body, emit) {
    if (body.reset) this.onReset(body, emit);
    this.epoch = body.epoch;
    for (const notification of body.notifications) this.onNotification(notification, emit);
    this.after = body.cursor;
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

// How a browser client notices a server that stopped answering without
// closing: a dead process behind a proxy, a network that swallows packets, a
// proxy that buffers a stream. TCP may take minutes to say so, and page code
// cannot see WebSocket pings or SSE comments. So every client here keeps two
// rules, with a timer that each sign of life re-arms:
//
//   live within LIVE_WITHIN_MS of connecting (a hello, a first answer), or
//   give up on this connection and move on;
//   once live, hear something within twice the heartbeat interval (plus a
//   second for the network), or treat the connection as dead and reconnect.
//
// The push transports ask the server for a heartbeat it sends when quiet
// (`heartbeat=<s>` in docs/protocol.md); the polling ones bound each request.

export const LIVE_WITHIN_MS = 5000;
/** The heartbeat interval the lab's clients ask for, in seconds. */
export const HEARTBEAT_S = 5;

/** The longest silence a client with `heartbeatS` accepts before it calls the connection dead. */
export function silenceLimitMs(heartbeatS) {
  return 2 * heartbeatS * 1000 + 1000;
}

/** A timer that calls `onExpired(reason)` unless re-armed or disarmed in time. */
export class Watchdog {
  constructor(onExpired) {
    this.onExpired = onExpired;
    this.timer = null;
  }

  arm(ms, reason) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.onExpired(reason);
    }, ms);
  }

  disarm() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * The server was heard from on a live connection: with a heartbeat
   * (seconds) asked for, the silence rule starts again; without one,
   * nothing is timed.
   */
  heard(heartbeatS) {
    if (heartbeatS) {
      const ms = silenceLimitMs(heartbeatS);
      this.arm(ms, `nothing heard for ${ms / 1000} s`);
    } else {
      this.disarm();
    }
  }
}

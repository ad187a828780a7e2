// WebTransport over HTTP/3, the browser side of crates/webtransport/src/lib.rs.
//
// new WebTransport("https://host:port/api/webtransport?after=<cursor>&epoch=<epoch>")
// opens a session on an HTTP/3 connection, which runs on QUIC over UDP.
// The server opens one unidirectional stream in it and writes the same
// messages the WebSocket sends, one JSON message per line: {"type":"hello"},
// a {"type":"reset"} where the cursor could not be honoured, a
// {"type":"heartbeat"} during a quiet spell (asked for with
// `heartbeat=<s>`), and notifications, which have no `type`. A refusal the
// page must read (a bad query) comes as one {"type":"error"} line.
//
// The server's certificate may be one it generated: a browser takes such a
// certificate by its SHA-256 alone (`serverCertificateHashes`) if it is an
// ECDSA one valid for at most 14 days, so the page is given its hash and
// the lab works without installing anything. The page learns where the
// server listens, and the hash, from two <meta> tags the server writes
// (`webtransportTarget`); a page without them has no WebTransport.
//
// Like the WebSocket client, a session that closes or goes silent for
// longer than the heartbeat allows (liveness.js) is reopened from the
// cursor, so nothing published meanwhile is lost.

import { Cursor, byteLength, queryWith } from "./cursor.js";
import { LIVE_WITHIN_MS, Watchdog } from "./liveness.js";

const MAX_BACKOFF_MS = 10_000;

/**
 * Where this page's server accepts WebTransport sessions, and the
 * certificate hash to trust, from the page's <meta> tags; null when the
 * server does not serve it or the browser lacks WebTransport.
 */
export function webtransportTarget(doc = document) {
  const port = doc.querySelector("meta[name=webtransport-port]")?.content;
  const hash = doc.querySelector("meta[name=webtransport-hash]")?.content;
  if (!port || typeof WebTransport === "undefined") return null;
  const options = {};
  if (hash) {
    const bytes = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
    options.serverCertificateHashes = [{ algorithm: "sha-256", value: bytes }];
  }
  return { origin: `https://${location.hostname}:${port}`, options };
}

export class WebTransportClient {
  /** Options as for WebSocketClient; `target` as webtransportTarget() gives it. */
  constructor({ onEvent, cursor = new Cursor(), base = "", reconnect = true, params = {}, heartbeat = null, target = webtransportTarget() }) {
    this.onEvent = onEvent;
    this.cursor = cursor;
    this.base = base;
    this.reconnect = reconnect;
    this.params = params;
    this.heartbeat = heartbeat;
    this.target = target;
    this.session = null;
    this.running = false;
    this.backoff = 500;
    this.retryTimer = null;
    this.watchdog = new Watchdog((reason) => this.#lost(this.session, reason));
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.#connect();
  }

  /** Closes the session; the cursor is kept for the next start. */
  stop(state = "paused") {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.watchdog.disarm();
    const session = this.session;
    this.session = null;
    try {
      session?.close({ closeCode: 0, reason: state });
    } catch {
      // Closed already.
    }
    this.onEvent({ type: "status", state, text: state });
  }

  #connect() {
    if (!this.target) {
      this.#lost(null, "no WebTransport here (needs HTTP/3 on the server and in the browser)", true);
      return;
    }
    const query = queryWith(this.cursor, { ...this.params, heartbeat: this.heartbeat });
    let session;
    try {
      session = new WebTransport(`${this.target.origin}${this.base}/api/webtransport?${query}`, this.target.options);
    } catch (error) {
      this.#lost(null, `WebTransport refused: ${error.message}`, true);
      return;
    }
    this.session = session;
    this.onEvent({ type: "request" });
    this.onEvent({ type: "status", state: "connecting", text: "QUIC and HTTP/3 handshakes…" });
    this.watchdog.arm(LIVE_WITHIN_MS, `no hello within ${LIVE_WITHIN_MS / 1000} s`);
    session.closed.then(
      (info) => this.#lost(session, `session closed (${info.closeCode}${info.reason ? `: ${info.reason}` : ""})`),
      (error) => this.#lost(session, `connection lost: ${error.message}`),
    );
    this.#read(session).catch((error) => this.#lost(session, `stream failed: ${error.message}`));
  }

  /** Reads the server's one stream, line by line. */
  async #read(session) {
    await session.ready;
    if (this.session !== session) return;
    this.onEvent({ type: "http-version", text: "HTTP/3" });
    const streams = session.incomingUnidirectionalStreams.getReader();
    const { value: stream, done } = await streams.read();
    if (done) throw new Error("the session ended before its stream opened");
    const text = stream.pipeThrough(new TextDecoderStream()).getReader();
    let partial = "";
    for (;;) {
      const { value, done: ended } = await text.read();
      if (ended || this.session !== session) break;
      partial += value;
      const lines = partial.split("\n");
      partial = lines.pop();
      for (const line of lines) this.#onLine(session, line);
    }
    if (this.session === session) this.#lost(session, "the stream ended");
  }

  #onLine(session, line) {
    if (this.session !== session) return;
    this.onEvent({ type: "response", bytes: byteLength(line) + 1, empty: false });
    this.onEvent({ type: "heard" });
    this.watchdog.heard(this.heartbeat);
    const message = JSON.parse(line);
    if (message.type === "error") {
      this.#lost(session, `refused: ${message.message}`, true);
      return;
    }
    if (this.cursor.onPush(message, this.onEvent) === "hello") {
      this.backoff = 500;
      this.onEvent({ type: "status", state: "live", text: "session open" });
    }
  }

  /**
   * The session is gone (closed, failed, or silent too long): report it,
   * and reopen it from the cursor unless `final` (nothing would change).
   */
  #lost(session, why, final = false) {
    if (session !== null && this.session !== session) return; // closed on purpose, or already handled
    this.session = null;
    this.watchdog.disarm();
    try {
      session?.close();
    } catch {
      // Closed already.
    }
    if (!this.reconnect || final) {
      this.running = false;
      this.onEvent({ type: "status", state: "error", text: why });
      return;
    }
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.onEvent({ type: "status", state: "error", text: `${why}; reopening in ${wait / 1000} s` });
    this.retryTimer = setTimeout(() => this.running && this.#connect(), wait);
  }
}

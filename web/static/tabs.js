// What the lab's tabs do together about the browser's connection pool.
//
// Over HTTP/1.1 a browser opens at most six connections to one origin,
// shared by every tab, and queues every other request until one is free. A
// long poll and an SSE stream each hold one for as long as they last. So
// the lab's tabs tell each other (BroadcastChannel) how many they hold
// open, and each says in plain words when together they hold them all; and
// a hidden tab lets go of its connections, taking them up again from each
// pane's cursor when it is shown.

const HTTP1_CONNECTIONS_PER_ORIGIN = 6;
/** A tab not heard from for this long is taken to be gone. */
const TAB_FORGOTTEN_MS = 5000;
const ANNOUNCE_EVERY_MS = 2000;

export class Tabs {
  /** `page` is this tab's id; each of `panes` says what it holds (`heldConnection`). */
  constructor(page, panes) {
    this.page = page;
    this.panes = panes;
    /** What each tab said it holds, and when: page id → {held, at}. */
    this.held = new Map();
    this.channel = "BroadcastChannel" in window ? new BroadcastChannel("notify-lab") : null;
    this.notice = document.querySelector("[data-role=connection-limit]");
  }

  start() {
    this.channel?.addEventListener("message", (event) => {
      this.held.set(event.data.page, { held: event.data.held, at: Date.now() });
      this.#explain();
    });
    this.#releaseWhenHidden();
    this.#announce();
    setInterval(() => this.#announce(), ANNOUNCE_EVERY_MS);
  }

  /** A hidden tab need not hold a long poll and a stream nobody watches (and browsers throttle it anyway, chapter 7). */
  #releaseWhenHidden() {
    let released = [];
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") {
        released = this.panes.filter((pane) => pane.running);
        for (const pane of released) pane.stop("tab hidden: connections released");
      } else {
        for (const pane of released) pane.start();
        released = [];
      }
      this.#announce();
    });
  }

  #announce() {
    const held =
      document.visibilityState === "hidden" ? [] : this.panes.flatMap((pane) => pane.heldConnection() ?? []);
    this.held.set(this.page, { held, at: Date.now() });
    this.channel?.postMessage({ page: this.page, held });
    this.#explain();
  }

  #explain() {
    if (!this.notice) return;
    const protocol = performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "http/1.1";
    const now = Date.now();
    for (const [page, tab] of this.held) if (now - tab.at > TAB_FORGOTTEN_MS) this.held.delete(page);
    const total = [...this.held.values()].reduce((sum, tab) => sum + tab.held.length, 0);
    if (protocol !== "http/1.1" || total < HTTP1_CONNECTIONS_PER_ORIGIN) {
      this.notice.hidden = true;
      return;
    }
    const mine = this.held.get(this.page)?.held ?? [];
    this.notice.textContent =
      `The browser's connections to this server are all taken. Over HTTP/1.1 it opens at most ` +
      `${HTTP1_CONNECTIONS_PER_ORIGIN} per origin, shared by every tab, and ${this.held.size} tabs of this lab ` +
      `hold ${total} of them open (this one: ${mine.join(", ") || "none"}). Every other request — short ` +
      "polls, Socket.IO's handshake, page loads — waits in the browser's queue until one is free, which " +
      "may be never. Hide or close a tab (a hidden lab tab lets go of its connections), pause a pane, or " +
      "serve over HTTPS, where HTTP/2 carries every request on one connection.";
    this.notice.hidden = false;
  }
}

// The lab's wire view: the raw HTTP exchanges the server recorded, each
// shown in the pane that made it, with the bytes the server counted on each
// pane's connections; and, for the admin, every visitor's exchanges.
//
// A page sees only its own exchanges: it asks for those tagged with its
// random page id (`GET /api/wire/recent?lab=<page>`), every second, rather
// than holding a stream open, since over HTTP/1.1 a held stream would take
// one of the six connections the browser allows per origin, shared by every
// tab. Everyone's exchanges take the admin token (`GET /api/wire`).

import { formatMs } from "./clock.js";

export const MAX_WIRE_SHOWN = 30;

/** One recorded exchange as a list item: when, how long held, request and response heads. */
function exchangeItem(record) {
  const item = document.createElement("li");
  const meta = document.createElement("div");
  meta.className = "meta";
  const held = record.held_ms >= 100 ? ` · held ${formatMs(record.held_ms)}` : "";
  const who = record.pane ? ` · ${record.pane}` : "";
  meta.textContent = `${record.at}${held}${who}`;
  const request = document.createElement("pre");
  request.textContent = record.request;
  const response = document.createElement("pre");
  response.textContent = record.response;
  item.append(meta, request, response);
  return item;
}

/** Adds `item` at the top of `list`, keeping the newest MAX_WIRE_SHOWN. */
export function prependBounded(list, item) {
  list.prepend(item);
  while (list.children.length > MAX_WIRE_SHOWN) list.lastElementChild.remove();
}

/**
 * Follows page `page`'s exchanges: each into the Wire view of the pane that
 * made it (with the HTTP version of its request line: over HTTPS most
 * become HTTP/2, while a WebSocket stays on HTTP/1.1), and the bytes the
 * server counted into each pane.
 */
export function followWire(page, panes) {
  const byPane = new Map(panes.map((pane) => [pane.element.dataset.transport, pane]));
  let after = 0;
  const show = (record) => {
    const pane = byPane.get(record.pane);
    if (!pane) return;
    const version = record.request.split("\r\n", 1)[0].split(" ").at(-1);
    pane.setHttpVersion(version.replace("HTTP/2.0", "HTTP/2"));
    // Whether the answer came compressed, as the server sent it: a page
    // cannot see an event stream's headers, so the lab reads them here.
    const encoding = /^content-encoding: *(.+)$/im.exec(record.response)?.[1]?.trim();
    // A WebSocket's handshake (a 101, or over HTTP/2 an extended CONNECT)
    // says nothing of this: its pane reports what its socket negotiated.
    const opensWebSocket = / 101 /.test(record.response.split("\r\n", 1)[0]) || record.request.startsWith("CONNECT ");
    if (!opensWebSocket) pane.setCompression(encoding ?? "none");
    const list = pane.element.querySelector("[data-role=wire]");
    if (list) prependBounded(list, exchangeItem(record));
  };
  const ask = async () => {
    if (document.visibilityState === "hidden") return;
    try {
      const response = await fetch(`/api/wire/recent?lab=${page}&after=${after}`, {
        cache: "no-store",
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) return;
      const recent = await response.json();
      recent.records.forEach(show);
      after = recent.last;
      for (const [name, bytes] of Object.entries(recent.bytes)) {
        byPane.get(name)?.setWireBytes(bytes.to_browser, bytes.from_browser);
      }
    } catch {
      // The next turn asks again; the panes say whether the server answers.
    }
  };
  const loop = async () => {
    await ask();
    setTimeout(loop, 1000);
  };
  loop();
}

/**
 * The data of one event of a `text/event-stream` block, as the standard
 * reads it: every `data` field's value (one space after the colon is not
 * part of it), joined by line breaks; null for a block without data, such
 * as a comment.
 */
function eventData(block) {
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "data" || line.startsWith("data:")) {
      const value = line.slice(5);
      data.push(value.startsWith(" ") ? value.slice(1) : value);
    }
  }
  return data.length ? data.join("\n") : null;
}

/**
 * Everyone's exchanges, which only the admin may watch: the feed takes the
 * admin token, so it is read with fetch (EventSource cannot send a header)
 * and split into events here.
 */
export function followEveryone() {
  const form = document.querySelector("#everyone");
  if (!form) return;
  const list = form.parentElement.querySelector("[data-role=wire]");
  const state = form.querySelector("[data-role=everyone-state]");
  let controller = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    controller?.abort();
    controller = new AbortController();
    state.textContent = "connecting…";
    try {
      const response = await fetch("/api/wire", {
        headers: { Authorization: `Bearer ${form.token.value}` },
        signal: controller.signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        state.textContent = `${response.status}: ${body.message ?? "refused"}`;
        return;
      }
      state.textContent = "watching every client's exchanges";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replaceAll("\r\n", "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const data = eventData(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (data !== null) prependBounded(list, exchangeItem(JSON.parse(data)));
        }
      }
      state.textContent = "the feed ended";
    } catch (error) {
      if (error.name !== "AbortError") state.textContent = `the feed failed: ${error.message}`;
    }
  });
}

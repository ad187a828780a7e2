// The lab over HTTPS with HTTP/2 (`--tls-self-signed`), in headless
// Chromium: six tabs of one origin all work, because their requests share
// HTTP/2 connections instead of queueing for HTTP/1.1's six per origin; the
// polls, the streams and the WebSockets (RFC 8441's extended CONNECT)
// travel over h2;
// and the certificate served is the one whose fingerprint the server printed.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { TRANSPORTS, launchBrowser, openLab, publishPinned, screenshot, screenshotOf, startServer } from "./support.mjs";

const shared = { server: null, browser: null };
before(async () => {
  shared.server = await startServer(["--tls-self-signed"]);
  shared.browser = await launchBrowser();
});
after(async () => {
  await shared.browser?.close();
  await shared.server?.stop();
});

test("six lab tabs over HTTPS all receive a notification in every pane, over HTTP/2", async () => {
  const { base, fingerprint } = shared.server;
  assert.match(base, /^https:/);
  assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const context = await shared.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
  const tabs = [];
  for (let i = 0; i < 6; i++) tabs.push((await openLab(context, base)).page);

  const id = await publishPinned(base, fingerprint, "to six tabs");
  for (const page of tabs) {
    for (const transport of TRANSPORTS) {
      await page.locator(`#pane-${transport} [data-role=received] li[data-id="${id}"]`).waitFor();
    }
  }
  const last = tabs.at(-1);
  const protocols = await last.evaluate(() =>
    Object.fromEntries(
      performance
        .getEntriesByType("resource")
        .filter((e) => /\/api\/(poll|long-poll|sse|wire)\?/.test(e.name))
        .map((e) => [new URL(e.name).pathname, e.nextHopProtocol]),
    ),
  );
  for (const path of ["/api/poll", "/api/long-poll"]) assert.equal(protocols[path], "h2", `${path}: ${JSON.stringify(protocols)}`);
  // Each pane says which version its requests used.
  for (const transport of ["short-poll", "long-poll", "sse"]) {
    await last.locator(`#pane-${transport} [data-counter=http-version]`, { hasText: "HTTP/2" }).waitFor();
  }
  // WebSockets too, on HTTP/2 streams (RFC 8441): no connection of their own.
  await last.locator("#pane-websocket [data-counter=http-version]", { hasText: "HTTP/2" }).waitFor();
  await last.locator("#pane-websocket details.wire summary").click();
  const handshake = await last.locator("#pane-websocket [data-role=wire] li").last().textContent();
  assert.match(handshake, /CONNECT \S*\/api\/ws\?.* HTTP\/2\.0/);
  assert.match(handshake, /HTTP\/2\.0 200/);
  assert.doesNotMatch(handshake, /sec-websocket-accept/i);
  await last.locator("#pane-websocket [data-counter=compression]", { hasText: /^permessage-deflate/ }).waitFor();
  await last.locator("#pane-websocket [data-counter=wire-down]", { hasText: "shared (HTTP/2)" }).waitFor();
  // Socket.IO's WebSocket is opened the same way, and upgrades as ever.
  await last.locator("#pane-socketio [data-role=status]", { hasText: "connected over websocket" }).waitFor();
  // One connection carries every pane of the tab: its bytes are no one pane's.
  await last.locator("#pane-sse [data-counter=wire-down]", { hasText: "shared (HTTP/2)" }).waitFor();
  await screenshot(last, "lab-https-h2.png");
  await screenshotOf(last.locator("#pane-sse"), "lab-https-h2-pane.png");
  await context.close();
});

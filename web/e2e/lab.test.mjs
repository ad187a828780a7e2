// The lab page in headless Chromium: every pane receives what is published,
// counters show each transport's cost (bytes counted at the socket), a pane
// sees its own exchanges only, text stays text, and a connection that is
// dropped or frozen by the server is noticed by the client's own logic and
// resumed from its cursor with nothing missing.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  TOKEN,
  TRANSPORTS,
  counter,
  openLab,
  publish,
  screenshot,
  serverAndBrowser,
  shownIds,
  startServer,
} from "./support.mjs";

const shared = serverAndBrowser();

test("every pane shows a published notification and its counters move", async () => {
  const { page, errors } = await openLab(shared.browser, shared.server.base);
  await page.selectOption("#pane-short-poll [data-control=interval]", "500");
  const id = await publish(shared.server.base, "Maintenance at 22:00");
  for (const transport of TRANSPORTS) {
    const item = page.locator(`#pane-${transport} [data-role=received] li[data-id="${id}"]`);
    await item.waitFor();
    assert.match(await item.textContent(), /^Maintenance at 22:00/);
    assert.ok((await counter(page, transport, "notifications")) >= 1, transport);
    assert.ok((await counter(page, transport, "bytes")) > 0, transport);
    assert.notEqual(await page.locator(`#pane-${transport} [data-counter=last-latency]`).textContent(), "–");
  }

  // Short polling keeps asking; WebSocket asked once.
  const before = await counter(page, "short-poll", "requests");
  await page.waitForFunction(
    (n) => Number(document.querySelector("#pane-short-poll [data-counter=requests]").textContent) >= n + 3,
    before,
  );
  assert.ok((await counter(page, "short-poll", "empty")) >= 2, "most short polls come back empty");
  assert.equal(await counter(page, "websocket", "requests"), 1);
  assert.equal(await counter(page, "websocket", "empty"), 0);

  // The wire view shows the handshake as the server answered it.
  await page.click("#pane-websocket details.wire summary");
  const wire = page.locator("#pane-websocket [data-role=wire] li").last();
  await wire.waitFor();
  const exchange = await wire.textContent();
  assert.match(exchange, /GET \/api\/ws/);
  assert.match(exchange, /HTTP\/1\.1 101 Switching Protocols/);
  assert.match(exchange, /sec-websocket-accept: /);
  assert.match(exchange, /sec-websocket-protocol: notify\.v1/, "the subprotocol the client offered, echoed");
  // Chromium offers permessage-deflate; the server takes it with no
  // context takeover, and the pane says so.
  assert.match(exchange, /sec-websocket-extensions: permessage-deflate/);
  assert.match(exchange, /sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover/);
  assert.equal(
    await page.locator("#pane-websocket [data-counter=compression]").textContent(),
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
  );
  // The HTTP panes say what their latest answer came in, as the server sent
  // it: Chromium accepts Brotli, and an event stream comes in gzip. (An
  // empty long-poll answer is too short to shrink, so ask for one that
  // carries a notification.)
  await publish(shared.server.base, `for the long poll, compressed: ${"maintenance tonight ".repeat(10)}`);
  await page.locator("#pane-long-poll [data-counter=compression]", { hasText: /^br$/ }).waitFor();
  await page.locator("#pane-sse [data-counter=compression]", { hasText: /^gzip$/ }).waitFor();

  // A pane's Wire holds its own exchanges only: the Auto pane's WebSocket
  // and the other panes' requests are not in it.
  await page.click("#pane-sse details.wire summary");
  const sseRequests = await page.locator("#pane-sse [data-role=wire] li pre:first-of-type").allTextContents();
  assert.ok(sseRequests.length >= 1);
  for (const request of sseRequests) assert.match(request, /^GET \/api\/sse\?.*lab=[0-9a-f]+\.sse/);
  const wsRequests = await page.locator("#pane-websocket [data-role=wire] li pre:first-of-type").allTextContents();
  assert.deepEqual(wsRequests.length, 1, "the Auto pane's handshake is not shown here");

  // What crosses the wire, headers included, is far more than the bodies.
  await page.waitForFunction(() => Number(document.querySelector("#pane-short-poll [data-counter=wire-up]").textContent.replaceAll(",", "")) > 0);
  const body = await counter(page, "short-poll", "bytes");
  const down = await counter(page, "short-poll", "wire-down");
  const up = await counter(page, "short-poll", "wire-up");
  assert.ok(down > body + 100 * (await counter(page, "short-poll", "requests")) - 1000, `headers counted: ${down} vs body ${body}`);
  assert.ok(up > 0, "request heads counted");

  await screenshot(page, "lab.png");
  assert.deepEqual(errors, []);
  await page.close();
});

test("the lab fits a phone screen", async () => {
  const { page } = await openLab(shared.browser, shared.server.base, { width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
  await screenshot(page, "lab-phone.png");
  await page.close();
});

test("markup in a notification is shown as text and never runs", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  let dialogs = 0;
  page.on("dialog", async (dialog) => {
    dialogs += 1;
    await dialog.dismiss();
  });
  const hostile = "<img src=x onerror=alert(1)>";
  const id = await publish(shared.server.base, hostile);
  for (const transport of TRANSPORTS) {
    const item = page.locator(`#pane-${transport} [data-role=received] li[data-id="${id}"]`);
    await item.waitFor();
    assert.equal(await item.evaluate((li) => li.firstChild.textContent), hostile, transport);
    assert.equal(await page.locator(`#pane-${transport} [data-role=received] img`).count(), 0, transport);
  }
  await page.waitForTimeout(300);
  assert.equal(dialogs, 0, "no script ran");
  await page.close();
});

test("a dropped connection is noticed by the client, which reconnects and resumes with nothing missing", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  const cut = ["long-poll", "websocket", "sse", "socketio", "auto"];
  // Socket.IO's connection is the WebSocket once the library has upgraded.
  await page.locator("#pane-socketio [data-role=status]", { hasText: "connected over websocket" }).waitFor();
  const requests = {};
  for (const transport of cut) {
    requests[transport] = await counter(page, transport, "requests");
    await page.click(`#pane-${transport} [data-action=drop]`);
    const note = page.locator(`#pane-${transport} [data-role=cut]`);
    await note.filter({ hasText: /Reset \d+ connection/ }).waitFor();
  }
  const after = [];
  for (const n of [1, 2, 3]) after.push(await publish(shared.server.base, `after the drop ${n}`));
  for (const transport of cut) {
    await page.locator(`#pane-${transport} [data-role=received] li[data-id="${after[2]}"]`).waitFor();
    await page.locator(`#pane-${transport} [data-role=status][data-state=live]`).waitFor();
    assert.ok((await counter(page, transport, "requests")) > requests[transport], `${transport} reconnected by itself`);
    const ids = await shownIds(page, transport);
    for (const id of after) assert.equal(ids.filter((x) => x === id).length, 1, `${transport} shows #${id} once`);
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), `${transport} shows them in order`);
    assert.equal(await page.locator(`#pane-${transport} [data-role=received] li.reset`).count(), 0, `${transport} needed no reset`);
  }
  await page.close();
});

test("a frozen connection is noticed by the liveness rule, not by TCP", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  for (const transport of ["websocket", "sse"]) {
    await page.click(`#pane-${transport} [data-action=freeze]`);
    await page.locator(`#pane-${transport} [data-role=cut]`, { hasText: "Froze 1 connection" }).waitFor();
  }
  const id = await publish(shared.server.base, "sent into the silence");
  for (const transport of ["websocket", "sse"]) {
    // The server wrote it into the frozen connection, where it vanished;
    // the client hears nothing, calls the connection dead, and resumes.
    await page.locator(`#pane-${transport} [data-role=status][data-state=error]`, { hasText: "nothing heard for 11 s" }).waitFor({ timeout: 20_000 });
    const item = page.locator(`#pane-${transport} [data-role=received] li[data-id="${id}"]`);
    await item.waitFor({ timeout: 20_000 });
    assert.equal(await item.count(), 1);
    assert.equal(await page.locator(`#pane-${transport} [data-role=received] li.reset`).count(), 0);
  }
  assert.match(await page.locator("#pane-websocket [data-counter=heard]").textContent(), /^\d+ s ago$/);
  await page.close();
});

test("every client's exchanges need the admin token", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  await page.click(".publish-wire details.wire summary");
  await page.fill("#everyone [name=token]", "not the token");
  await page.click("#everyone button[type=submit]");
  await page.locator("[data-role=everyone-state]", { hasText: /^401: / }).waitFor();
  await page.fill("#everyone [name=token]", TOKEN);
  await page.click("#everyone button[type=submit]");
  await page.locator("[data-role=everyone-state]", { hasText: "watching" }).waitFor();
  await publish(shared.server.base, "seen by the admin");
  const item = page.locator(".publish-wire [data-role=wire] li", { hasText: "POST /api/notifications" }).first();
  await item.waitFor();
  assert.match(await item.textContent(), /authorization: <redacted>/);
  await page.close();
});

test("catching up after a pause is not counted as latency, and counters reset", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  const live = await publish(shared.server.base, "live before the pause");
  await page.locator(`#pane-websocket [data-role=received] li[data-id="${live}"]`).waitFor();
  await page.click("#pane-websocket [data-action=pause]");
  const missed = await publish(shared.server.base, "published while paused");
  await page.waitForTimeout(1500);
  await page.click("#pane-websocket [data-action=pause]"); // Resume
  const item = page.locator(`#pane-websocket [data-role=received] li[data-id="${missed}"]`);
  await item.waitFor();
  assert.match(await item.textContent(), /caught up after a pause/);
  assert.equal(await counter(page, "websocket", "caught-up"), 1);
  const mean = await page.locator("#pane-websocket [data-counter=mean-latency]").textContent();
  assert.match(mean, /^\d+ ms$/, `the pause's 1.5 s is not in the mean (${mean})`);

  await page.click("#pane-websocket [data-action=reset-counters]");
  assert.equal(await counter(page, "websocket", "notifications"), 0);
  assert.equal(await page.locator("#pane-websocket [data-counter=mean-latency]").textContent(), "–");
  await page.close();
});

test("a server restart is explained in plain words, and ids start again at #1", async () => {
  // A server of this test's own, restarted on the same port.
  const first = await startServer();
  const addr = new URL(first.base).host;
  const { page } = await openLab(shared.browser, first.base);
  const before = await page.locator("[data-role=process]").textContent();
  const old = await publish(first.base, "before the restart");
  await page.locator(`#pane-websocket [data-role=received] li[data-id="${old}"]`).waitFor();

  await first.stop();
  await page.locator("#pane-websocket [data-role=status][data-state=error]", { hasText: "connection lost" }).waitFor();
  const second = await startServer([], addr);
  try {
    const id = await publish(second.base, "after the restart");
    assert.equal(id, 1, "a new in-memory hub starts at #1");
    const notice = page.locator("[data-role=restart]:not([hidden])");
    await notice.waitFor();
    assert.match(await notice.textContent(), /The server restarted: .* ids begin again at #1/);
    const now = await page.locator("[data-role=process]").textContent();
    assert.notEqual(now, before, "the header names the new process");
    for (const transport of ["websocket", "sse", "socketio"]) {
      await page.locator(`#pane-${transport} [data-role=received] li.reset`, { hasText: "ids start again at #1" }).waitFor();
      await page.locator(`#pane-${transport} [data-role=received] li[data-id="1"]`, { hasText: "after the restart" }).waitFor();
    }
  } finally {
    await page.close();
    await second.stop();
  }
});

test("a browser gets the WebSocket subprotocol it offers, and fails on one the server does not speak", async () => {
  const page = await shared.browser.newPage();
  await page.goto(shared.server.base);
  const open = (protocols) =>
    page.evaluate(
      (protocols) =>
        new Promise((resolve) => {
          const ws = new WebSocket(`ws://${location.host}/api/ws`, protocols);
          ws.onopen = () => {
            resolve({ opened: true, protocol: ws.protocol });
            ws.close();
          };
          ws.onclose = (event) => resolve({ opened: false, code: event.code });
        }),
      protocols,
    );
  assert.deepEqual(await open("notify.v1"), { opened: true, protocol: "notify.v1" });
  assert.deepEqual(await open(["chat", "notify.v1"]), { opened: true, protocol: "notify.v1" });
  assert.deepEqual(await open([]), { opened: true, protocol: "" }, "none offered, none needed");
  assert.deepEqual(
    await open("chat"),
    { opened: false, code: 1006 },
    "offered only chat: none echoed, the browser fails it",
  );
  await page.close();
});

test("a long notification arrives whole over a compressed WebSocket, and --ws-deflate off sends it plain", async () => {
  const text = "系统维护通知：今晚 22:00 至 23:00 服务暂停。Maintenance tonight from 22:00 to 23:00. ".repeat(20);
  for (const [args, compression] of [
    [[], /^permessage-deflate/],
    [["--ws-deflate", "off"], /^none$/],
  ]) {
    const server = await startServer(args);
    try {
      const { page, errors } = await openLab(shared.browser, server.base);
      const pane = page.locator("#pane-websocket");
      assert.match(await pane.locator("[data-counter=compression]").textContent(), compression);
      const id = await publish(server.base, text);
      const item = pane.locator(`[data-role=received] li[data-id="${id}"] .text`);
      await item.waitFor();
      assert.equal(await item.textContent(), text.trim());
      assert.deepEqual(errors, []);
      await page.close();
    } finally {
      await server.stop();
    }
  }
});

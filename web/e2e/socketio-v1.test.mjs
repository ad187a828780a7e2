// The socket.io 1.3.5 client of the original write-up, vendored, in
// headless Chromium against this server: it connects over its default
// transports (polling, then the upgrade), WebSocket only and polling only;
// two tabs on /test each get `my response` when one emits, Chinese text
// both ways; and a site-wide notification reaches it on `/`. Then the
// page the write-ups copied, as it was (`/socket.html`): Flask-SocketIO's
// example page on jQuery 1.4.2 and the same client, every form of it. And
// the lab's Socket.IO pane switched to 1.3.5: it resumes from its cursor,
// and its Packets show the 2015 binary framing where today's was text.

import assert from "node:assert/strict";
import { test } from "node:test";
import { openLab, publish, serverAndBrowser, shownIds } from "./support.mjs";

const shared = serverAndBrowser();

/** A tab with the 1.3.5 client loaded, as the write-up's page loads it. */
async function tab() {
  const page = await shared.browser.newPage();
  await page.goto(new URL("/admin", shared.server.base).href);
  await page.addScriptTag({ url: "/static/vendor/socket.io-1.3.5.js" });
  return page;
}

/** Connects to `namespace` with `options`; resolves the transport once connected. */
function connect(page, namespace, options) {
  return page.evaluate(
    ([namespace, options]) =>
      new Promise((resolve, reject) => {
        const url = `http://${document.domain}:${location.port}${namespace}`;
        window.socket = io.connect(url, { ...options, forceNew: true });
        window.received = [];
        window.socket.on("my response", (msg) => window.received.push(msg.data));
        window.socket.on("notification", (n) => window.received.push(n.text));
        window.socket.on("connect", () => setTimeout(() => resolve(window.socket.io.engine.transport.name), 500));
        window.socket.on("connect_error", (err) => reject(new Error(`connect_error: ${err}`)));
      }),
    [namespace, options],
  );
}

const received = (page, text) =>
  page.waitForFunction((text) => window.received.includes(text), text, { timeout: 10_000 });

for (const [name, options, transport] of [
  ["its default transports, upgraded to WebSocket", {}, "websocket"],
  ["WebSocket only", { transports: ["websocket"] }, "websocket"],
  ["polling only", { transports: ["polling"] }, "polling"],
  // Text answers instead of binary, as in a browser without XHR2.
  ["polling only, asking for text (b64=1)", { transports: ["polling"], forceBase64: true }, "polling"],
]) {
  test(`the 1.3.5 client on /test over ${name}: both tabs get my response, Chinese both ways`, async () => {
    const [a, b] = [await tab(), await tab()];
    assert.equal(await connect(a, "/test", options), transport);
    assert.equal(await connect(b, "/test", options), transport);
    const text = `你好，世界 (${transport})`;
    await a.evaluate((text) => window.socket.emit("my broadcast event", { data: text }), text);
    await received(a, text);
    await received(b, text);
    await a.close();
    await b.close();
  });
}

test("the 1.3.5 client on / gets a site-wide notification", async () => {
  const page = await tab();
  await connect(page, "/", {});
  await publish(shared.server.base, "维护时间：22:00");
  await received(page, "维护时间：22:00");
  await page.close();
});

test("the demo page on the 1.3.5 client: a broadcast from one tab reaches both", async () => {
  const open = async () => {
    const page = await shared.browser.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(new URL("/seed?client=1.3.5", shared.server.base).href);
    assert.equal(await page.locator("[data-role=client]").textContent(), "1.3.5");
    await page.locator("[data-role=transport]", { hasText: "websocket" }).waitFor();
    return { page, errors };
  };
  const [a, b] = [await open(), await open()];
  await a.page.fill("input[name=data]", "来自 2015 的问候");
  await a.page.click("button[type=submit]");
  for (const { page } of [a, b]) {
    await page.locator("[data-role=log] li", { hasText: "Received: 来自 2015 的问候" }).waitFor();
  }
  assert.deepEqual([...a.errors, ...b.errors], []);
  await a.page.close();
  await b.page.close();
});

test("the write-up's page as it was: every form works, in two tabs, with no script error", async () => {
  const open = async () => {
    const page = await shared.browser.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("console", (message) => {
      // jQuery 1.4.2 probes whether inline scripts run by inserting one;
      // the page's policy refuses it, by design, and says so on the console.
      // The page names no icon, so the browser asks for /favicon.ico: 404.
      const expected =
        message.text().includes("Content Security Policy") || message.location().url.endsWith("/favicon.ico");
      if (message.type() === "error" && !expected) {
        problems.push(message.text());
      }
    });
    const response = await page.goto(new URL("/socket.html", shared.server.base).href);
    assert.match(response.headers()["content-security-policy"], /script-src 'self' 'sha256-/);
    // The page's own connect handler emits `my event`, echoed to it alone.
    await page.locator("#log", { hasText: "Received #1: I'm connected!" }).waitFor();
    return { page, problems };
  };
  const log = (page) => page.locator("#log").innerText();
  const [a, b] = [await open(), await open()];
  assert.equal(await a.page.title(), "Flask-SocketIO Test");
  assert.doesNotMatch(await b.page.content(), /cdnjs|code\.jquery\.com/);

  // Echo reaches the sender only; broadcast reaches both tabs.
  await a.page.fill("#emit_data", "只给我");
  await a.page.click("form#emit input[type=submit]");
  await a.page.locator("#log", { hasText: "Received #2: 只给我" }).waitFor();
  await a.page.fill("#broadcast_data", "<b>大家好</b>");
  await a.page.click("form#broadcast input[type=submit]");
  for (const { page } of [a, b]) {
    // Shown as text, never as markup: the page escapes what others typed.
    await page.locator("#log", { hasText: "Received #3: <b>大家好</b>" }).waitFor();
  }
  assert.doesNotMatch(await log(b.page), /只给我/);

  // Rooms: B joins, A sends to the room, then closes it.
  await b.page.fill("#join_room", "房间");
  await b.page.click("form#join input[type=submit]");
  await b.page.locator("#log", { hasText: "In rooms: 房间" }).waitFor();
  await a.page.fill("#room_name", "房间");
  await a.page.fill("#room_data", "房间里的消息");
  await a.page.click("form#send_room input[type=submit]");
  await b.page.locator("#log", { hasText: "Received #4: 房间里的消息" }).waitFor();
  await a.page.fill("#close_room", "房间");
  await a.page.click("form#close input[type=submit]");
  await b.page.locator("#log", { hasText: "Room 房间 is closing." }).waitFor();
  await b.page.fill("#leave_room", "房间");
  await b.page.click("form#leave input[type=submit]");
  await b.page.locator("#log", { hasText: /Received #\d+: In rooms: $/m }).waitFor();

  // Disconnect: answered, then the socket leaves.
  await b.page.click("form#disconnect input[type=submit]");
  await b.page.locator("#log", { hasText: "Disconnected!" }).waitFor();

  assert.deepEqual([...a.problems, ...b.problems], []);
  await a.page.close();
  await b.page.close();
});

test("the lab's Socket.IO pane on 1.3.5: the same feed, resumed, and the 2015 framing in Packets", async () => {
  const { page, errors } = await openLab(shared.browser, shared.server.base);
  const pane = page.locator("#pane-socketio");
  const packets = pane.locator("[data-role=packets]");
  await pane.locator("details:has([data-role=packets]) summary").click();
  // Today's client: Engine.IO 4, text payloads (its first, the handshake,
  // is read before the pane can watch; the noops of its upgrade are not).
  await packets.locator("li", { hasText: /polling answer, text, \d+ bytes: / }).first().waitFor();
  const before = await publish(shared.server.base, "today's client");
  await pane.locator(`[data-role=received] li[data-id="${before}"]`).waitFor();

  await pane.locator("[data-control=client]").selectOption("1.3.5");
  await packets.locator("li", { hasText: "now on socket.io 1.3.5" }).waitFor();
  // The 1.3.5 handshake: a binary payload, <00, the length's digits, ff>.
  await packets.locator("li", { hasText: /polling answer, binary, \d+ bytes: <00( \d\d)+ ff>0\{"sid"/ }).first().waitFor();
  await pane.locator("[data-role=status]", { hasText: "connected over websocket" }).waitFor();
  const after = await publish(shared.server.base, "上一代的客户端");
  await pane.locator(`[data-role=received] li[data-id="${after}"]`).waitFor();
  // Resumed from the cursor: each once, nothing replayed.
  const ids = await shownIds(page, "socketio");
  for (const id of [before, after]) assert.equal(ids.filter((x) => x === id).length, 1, `#${id} once`);
  assert.equal(await pane.locator("[data-role=received] li.reset").count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});

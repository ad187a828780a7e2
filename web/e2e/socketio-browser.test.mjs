// Socket.IO in headless Chromium: the /seed page (the original demo, with
// the vendored official client) and the lab's Socket.IO pane.

import assert from "node:assert/strict";
import { test } from "node:test";
import { openLab, publish, screenshot, shownIds, serverAndBrowser } from "./support.mjs";

const shared = serverAndBrowser();

async function openSeed() {
  const page = await shared.browser.newPage({ viewport: { width: 1000, height: 700 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(new URL("/seed", shared.server.base).href);
  await page.locator("[data-role=transport]", { hasText: "websocket" }).waitFor();
  return { page, errors };
}

test("the /seed page: a broadcast from one tab reaches both, over WebSocket", async () => {
  const a = await openSeed();
  const b = await openSeed();
  await a.page.fill("input[name=data]", "Hello from tab A");
  await a.page.click("button[type=submit]");
  for (const { page } of [a, b]) {
    await page.locator("[data-role=log] li", { hasText: "Received: Hello from tab A" }).waitFor();
  }
  await screenshot(a.page, "seed.png");
  assert.deepEqual([...a.errors, ...b.errors], []);
  await a.page.close();
  await b.page.close();
});

test("the lab's Socket.IO pane receives notifications and shows the library's packets", async () => {
  const { page, errors } = await openLab(shared.browser, shared.server.base);
  const id = await publish(shared.server.base, "Through the library");
  const item = page.locator(`#pane-socketio [data-role=received] li[data-id="${id}"]`);
  await item.waitFor();
  assert.match(await item.textContent(), /^Through the library/);

  // The packets the library exchanged: the Engine.IO handshake over
  // polling, the upgrade probe, and the event that carried the notification.
  await page.click("#pane-socketio details.wire:has([data-role=packets]) summary");
  const packets = page.locator("#pane-socketio [data-role=packets]");
  await packets.locator("li", { hasText: '← 0{"sid":' }).first().waitFor();
  await packets.locator("li", { hasText: "→ 2probe ← 3probe" }).first().waitFor();
  await packets.locator("li", { hasText: `← 42["notification",{"id":${id},` }).first().waitFor();
  // And the HTTP exchanges the server recorded: the polling handshake.
  await page.click("#pane-socketio details.wire:has([data-role=wire]) summary");
  const wire = page.locator("#pane-socketio [data-role=wire]");
  await wire.locator("li", { hasText: /GET \/socket\.io\/\?lab=[0-9a-f]+\.socketio&EIO=4&transport=polling/ }).first().waitFor();
  assert.match(await page.locator("#pane-socketio [data-role=status]").textContent(), /connected over/);

  // Paused, then resumed: what was published meanwhile arrives once, in order.
  await page.click("#pane-socketio [data-action=pause]");
  await page.locator("#pane-socketio [data-role=status][data-state=paused]").waitFor();
  const missed = [];
  for (const n of [1, 2, 3]) missed.push(await publish(shared.server.base, `missed ${n}`));
  await page.click("#pane-socketio [data-action=pause]");
  await page.locator(`#pane-socketio [data-role=received] li[data-id="${missed[2]}"]`).waitFor();
  const ids = await shownIds(page, "socketio");
  for (const missedId of missed) assert.equal(ids.filter((x) => x === missedId).length, 1);
  assert.deepEqual(ids, [...ids].sort((x, y) => y - x), "newest first, no reordering");

  await screenshot(page, "lab-socketio.png");
  assert.deepEqual(errors, []);
  await page.close();
});

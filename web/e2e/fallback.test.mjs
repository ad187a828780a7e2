// The auto client in headless Chromium: it uses WebSocket while it can, and
// as transports are refused one by one it falls back to SSE, long polling
// and short polling, receiving every notification once, in order, across
// the switches; and a transport that answers nothing at all is left behind
// by the rule "live within 5 s, or move on".

import assert from "node:assert/strict";
import { test } from "node:test";
import { openLab, publish, screenshot, shownIds, serverAndBrowser } from "./support.mjs";

const shared = serverAndBrowser();

async function waitUntilUsing(page, transport) {
  await page.locator(`#pane-auto[data-using="${transport}"] [data-role=status][data-state=live]`).waitFor();
}

async function receivedVia(page, id, transport) {
  const item = page.locator(`#pane-auto [data-role=received] li[data-id="${id}"]`);
  await item.waitFor();
  assert.match(await item.locator(".meta").textContent(), new RegExp(`via ${transport}\\b`));
}

test("the auto client falls back transport by transport without loss or duplicate", async () => {
  const { page, errors } = await openLab(shared.browser, shared.server.base);
  await waitUntilUsing(page, "websocket");
  const published = [];
  published.push(await publish(shared.server.base, "on websocket"));
  await receivedVia(page, published.at(-1), "websocket");

  for (const [refuse, next] of [
    ["websocket", "sse"],
    ["sse", "long-poll"],
    ["long-poll", "short-poll"],
  ]) {
    await page.check(`#pane-auto [data-refuse="${refuse}"]`);
    // Published while the client is switching: the shared cursor brings it.
    published.push(await publish(shared.server.base, `while leaving ${refuse}`));
    await waitUntilUsing(page, next);
    published.push(await publish(shared.server.base, `on ${next}`));
    await receivedVia(page, published.at(-1), next);
  }

  // Everything published arrived exactly once, newest first.
  const ids = await shownIds(page, "auto");
  const expected = [...published].reverse();
  assert.deepEqual(
    ids.filter((id) => published.includes(id)),
    expected,
  );
  assert.equal(await page.locator("#pane-auto [data-role=received] li.reset").count(), 0);
  await screenshot(page, "lab-fallback.png");

  // Allowing WebSocket again moves the client back to it.
  await page.uncheck('#pane-auto [data-refuse="websocket"]');
  await waitUntilUsing(page, "websocket");
  const back = await publish(shared.server.base, "back on websocket");
  await receivedVia(page, back, "websocket");
  assert.deepEqual(errors, []);
  await page.close();
});

test("a transport that goes silent is left after five seconds, as a hung upgrade or a buffering proxy would need", async () => {
  const { page, errors } = await openLab(shared.browser, shared.server.base);
  await waitUntilUsing(page, "websocket");
  // The server swallows the upgrade and the stream without answering: no
  // error ever comes, only silence.
  await page.check('#pane-auto [data-silence="websocket"]');
  await waitUntilUsing(page, "sse");
  await page.check('#pane-auto [data-silence="sse"]');
  await waitUntilUsing(page, "long-poll");
  const id = await publish(shared.server.base, "past two silent transports");
  await receivedVia(page, id, "long-poll");
  assert.equal(await page.locator("#pane-auto [data-role=received] li.reset").count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});

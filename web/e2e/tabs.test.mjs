// Several lab tabs over plain HTTP/1.1, in headless Chromium. The browser
// opens at most six connections to one origin, shared by every tab, and
// each lab tab holds a long poll and a stream open: a hidden tab lets go of
// them and takes them up again, from its cursors, when shown; and when the
// tabs together hold them all anyway, the lab says so in plain words.
//
// Headless Chromium shows every page at once; the tests switch tabs the
// way a browser tells a page it was hidden or shown: `visibilityState` and
// a `visibilitychange` event.

import assert from "node:assert/strict";
import { test } from "node:test";
import { TRANSPORTS, openLab, publish, screenshotOf, serverAndBrowser } from "./support.mjs";

const shared = serverAndBrowser();

function setVisible(page, visible) {
  return page.evaluate((shown) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (shown ? "visible" : "hidden") });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => !shown });
    document.dispatchEvent(new Event("visibilitychange"));
  }, visible);
}

async function showsInEveryPane(page, id) {
  for (const transport of TRANSPORTS) {
    await page.locator(`#pane-${transport} [data-role=received] li[data-id="${id}"]`).waitFor();
  }
}

test("three tabs over HTTP/1.1: hidden tabs let go, and each shows every notification when shown", async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const a = (await openLab(context, shared.server.base)).page;
  await setVisible(a, false);
  await a.locator("#pane-long-poll [data-role=status]", { hasText: "tab hidden" }).waitFor();
  const b = (await openLab(context, shared.server.base)).page;
  await setVisible(b, false);
  const c = (await openLab(context, shared.server.base)).page;
  assert.equal(await c.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol), "http/1.1");

  const id = await publish(shared.server.base, "to three tabs");
  await showsInEveryPane(c, id);
  // Switching tabs: the one shown resumes from its cursors.
  await setVisible(c, false);
  await setVisible(a, true);
  await showsInEveryPane(a, id);
  await setVisible(a, false);
  await setVisible(b, true);
  await showsInEveryPane(b, id);
  for (const page of [a, b]) {
    assert.equal(await page.locator("[data-role=received] li.reset").count(), 0);
  }
  await context.close();
});

test("when the tabs hold every connection the browser allows, the lab says so", async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const a = (await openLab(context, shared.server.base)).page;
  const b = (await openLab(context, shared.server.base)).page;
  // A third visible tab: its long poll and stream take the last two.
  const c = await context.newPage();
  await c.goto(shared.server.base);
  const notice = a.locator("[data-role=connection-limit]:not([hidden])");
  await notice.waitFor();
  await screenshotOf(notice, "lab-connection-limit.png");
  assert.match(await notice.textContent(), /at most 6 per origin, shared by every tab, and 3 tabs of this lab hold \d+ of them open \(this one: .*a long poll/);
  // Hiding one lets go of its two: the notice goes.
  await setVisible(b, false);
  await a.locator("[data-role=connection-limit][hidden]").waitFor({ state: "attached" });
  await context.close();
});

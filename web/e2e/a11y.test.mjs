// What the pages say, to everyone: accessibility checked by axe-core, the
// names and live regions a screen reader needs, text shown as written (line
// breaks, right-to-left scripts), states that fit their pane, and the admin
// page's limit enforced by the server's own answer rather than a silent cut.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { openLab, publish, serverAndBrowser } from "./support.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

const shared = serverAndBrowser();

/** axe-core's serious and critical findings on the page as it is now. */
async function seriousViolations(page) {
  await page.addScriptTag({ path: AXE });
  const results = await page.evaluate(() => window.axe.run(document));
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

test("axe-core finds no serious violation on the lab, the admin page and /seed", async () => {
  // The pages forbid inline scripts; the checker is injected as one.
  const context = await shared.browser.newContext({ bypassCSP: true, viewport: { width: 1400, height: 1000 } });
  const { page } = await openLab(context, shared.server.base);
  await publish(shared.server.base, "Checked by axe");
  await page.locator("#pane-websocket [data-role=received] li").first().waitFor();
  assert.deepEqual(await seriousViolations(page), [], "lab");
  // The other states' colours: paused, cut and failing panes.
  await page.click("#pane-websocket [data-action=pause]");
  await page.click("#pane-sse [data-action=drop]");
  await page.click("#pane-long-poll [data-action=freeze]");
  for (const transport of ["websocket", "sse", "long-poll", "short-poll"]) {
    await page.check(`#pane-auto [data-refuse=${transport}]`);
  }
  await page.locator("#pane-auto [data-role=status][data-state=error]").waitFor();
  assert.deepEqual(await seriousViolations(page), [], "lab, paused, dropped and failing");
  for (const path of ["/admin", "/seed"]) {
    await page.goto(new URL(path, shared.server.base).href);
    assert.deepEqual(await seriousViolations(page), [], path);
  }
  await context.close();
});

test("screen readers get named buttons, pane states and new notifications", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  for (const title of ["Short polling", "WebSocket", "Socket.IO"]) {
    await page.getByRole("button", { name: `Pause ${title}` }).waitFor();
    await page.getByRole("button", { name: `Drop connection of ${title}` }).waitFor();
    await page.getByRole("button", { name: `Freeze connection of ${title}` }).waitFor();
  }
  await page.getByRole("button", { name: "Pause WebSocket" }).click();
  await page.getByRole("button", { name: "Resume WebSocket" }).waitFor();
  const status = page.locator("#pane-websocket header [role=status]");
  assert.match(await status.textContent(), /^WebSocket: /, "a state change names its pane");

  const text = "Heard, not only seen";
  await publish(shared.server.base, text);
  await page.locator("[data-role=announce][aria-live=polite]", { hasText: `New notification: ${text}` }).waitFor();
  await page.close();
});

test("notifications keep their line breaks and their direction", async () => {
  const { page } = await openLab(shared.browser, shared.server.base);
  const multiline = await publish(shared.server.base, "First line\nSecond line");
  const arabic = await publish(shared.server.base, "الصيانة الساعة العاشرة");
  const shown = (id) => page.locator(`#pane-sse [data-role=received] li[data-id="${id}"] .text`);
  await shown(arabic).waitFor();
  assert.equal(await shown(multiline).evaluate((el) => el.innerText), "First line\nSecond line");
  assert.equal(await shown(arabic).evaluate((el) => getComputedStyle(el).direction), "rtl");
  assert.equal(await shown(multiline).evaluate((el) => getComputedStyle(el).direction), "ltr");
  await page.close();
});

test("a long state stays inside its pane", async () => {
  const { page } = await openLab(shared.browser, shared.server.base, { width: 390, height: 844 });
  for (const transport of ["websocket", "sse", "long-poll", "short-poll"]) {
    await page.check(`#pane-auto [data-refuse=${transport}]`);
  }
  const status = page.locator("#pane-auto [data-role=status]");
  await page.waitForFunction(
    () => document.querySelector("#pane-auto [data-role=status]").textContent.length > 30,
  );
  const fits = await status.evaluate((el) => {
    const pane = el.closest(".pane").getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return el.scrollWidth <= el.clientWidth + 1 && box.right <= pane.right + 0.5;
  });
  assert.ok(fits, `"${await status.textContent()}" is not clipped`);
  await page.close();
});

test("the admin page sends a text over the limit and shows why it was refused", async () => {
  const page = await shared.browser.newPage();
  await page.goto(new URL("/admin", shared.server.base).href);
  const before = await (await fetch(new URL("/api/poll", shared.server.base))).json();
  await page.fill("input[name=token]", "e2e-admin-token");
  await page.fill("textarea[name=text]", "a".repeat(4097));
  assert.equal(await page.locator("[data-role=bytes]").textContent(), "4,097 of 4,096 bytes");
  await page.click("button[type=submit]");
  const result = page.locator("[data-role=result][data-state=error]");
  await result.waitFor();
  assert.match(await result.textContent(), /^413: .*4097 bytes; the limit is 4096/);
  assert.equal((await page.inputValue("textarea[name=text]")).length, 4097, "nothing was cut");
  const after = await (await fetch(new URL("/api/poll", shared.server.base))).json();
  assert.equal(after.cursor, before.cursor, "nothing was published");
  await page.close();
});

// The admin page in headless Chromium: publishing needs the right token and
// shows the API's answer, and a burst publishes many.

import assert from "node:assert/strict";
import { test } from "node:test";
import { TOKEN, screenshot, serverAndBrowser } from "./support.mjs";

const shared = serverAndBrowser();

async function poll() {
  const response = await fetch(new URL("/api/poll", shared.server.base));
  return response.json();
}

test("a wrong token shows the 401 message and publishes nothing", async () => {
  const page = await shared.browser.newPage();
  await page.goto(new URL("/admin", shared.server.base).href);
  await page.fill("input[name=token]", "not-the-token");
  await page.fill("textarea[name=text]", "should not go out");
  await page.click("button[type=submit]");
  const result = page.locator("[data-role=result][data-state=error]");
  await result.waitFor();
  assert.match(await result.textContent(), /^401: missing or wrong admin token/);
  assert.deepEqual((await poll()).notifications, []);
  await page.close();
});

test("the right token publishes and shows the new id; a burst publishes many", async () => {
  const page = await shared.browser.newPage();
  await page.goto(new URL("/admin", shared.server.base).href);
  await page.fill("input[name=token]", TOKEN);
  await page.fill("textarea[name=text]", "Maintenance at 22:00");
  await page.click("button[type=submit]");
  const result = page.locator("[data-role=result][data-state=ok]");
  await result.waitFor();
  const [, id] = (await result.textContent()).match(/Published notification #(\d+)/);
  const published = (await poll()).notifications.find((n) => n.id === Number(id));
  assert.equal(published.text, "Maintenance at 22:00");

  // The token is remembered for this tab.
  await page.reload();
  assert.equal(await page.inputValue("input[name=token]"), TOKEN);

  await page.fill("input[name=burst]", "5");
  await page.click("[data-action=burst]");
  await page.locator("[data-role=result]", { hasText: "Published 5 notifications" }).waitFor();
  assert.equal((await poll()).notifications.length, 6);
  await screenshot(page, "admin.png");
  await page.close();
});

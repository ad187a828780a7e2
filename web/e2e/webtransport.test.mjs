// WebTransport over HTTP/3 in headless Chromium, against the server with a
// generated certificate (`--tls-self-signed`): the page is given the
// certificate's hash, so the browser opens the session without trusting
// any authority; the WebTransport pane receives every notification over
// HTTP/3; the Auto pane picks WebTransport first, and falls back to
// WebSocket without loss when WebTransport is refused; and a pane paused
// and resumed gets what was published meanwhile from its cursor. With
// `--webtransport-self-signed` the lab stays on plain HTTP, a secure
// context on 127.0.0.1, and still receives over WebTransport.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchBrowser, openLab, publish as publishPlain, publishPinned, screenshot, startServer } from "./support.mjs";

const shared = { server: null, browser: null };
before(async () => {
  shared.server = await startServer(["--tls-self-signed"]);
  shared.browser = await launchBrowser();
});
after(async () => {
  await shared.browser?.close();
  await shared.server?.stop();
});

const publish = (text) => publishPinned(shared.server.base, shared.server.fingerprint, text);

async function labOverHttps() {
  const context = await shared.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
  const { page, errors } = await openLab(context, shared.server.base);
  await page.locator("#pane-webtransport [data-role=status][data-state=live]").waitFor();
  return { context, page, errors };
}

test("the WebTransport pane receives every notification over HTTP/3, trusting the certificate by its hash", async () => {
  const { context, page, errors } = await labOverHttps();
  const hash = await page.locator("meta[name=webtransport-hash]").getAttribute("content");
  assert.equal(hash.toUpperCase(), shared.server.fingerprint.replaceAll(":", ""), "the page is given the served certificate's hash");
  const ids = [];
  for (let i = 1; i <= 5; i++) ids.push(await publish(`over QUIC ${i}`));
  for (const id of ids) await page.locator(`#pane-webtransport [data-role=received] li[data-id="${id}"]`).waitFor();
  const shown = await page.locator("#pane-webtransport [data-role=received] li[data-id]").evaluateAll((items) => items.map((li) => Number(li.dataset.id)).reverse());
  assert.deepEqual(shown.slice(-5), ids, "each once, in order");
  await page.locator("#pane-webtransport [data-counter=http-version]", { hasText: "HTTP/3" }).waitFor();
  await page.locator("#pane-webtransport [data-counter=wire-down]", { hasText: "not seen (QUIC)" }).waitFor();
  await screenshot(page, "webtransport-pane.png");
  assert.deepEqual(errors, []);
  await context.close();
});

test("the Auto pane is on WebTransport first, and falls back to WebSocket without loss when it is refused", async () => {
  const { context, page, errors } = await labOverHttps();
  await page.locator('#pane-auto[data-using="webtransport"] [data-role=status][data-state=live]').waitFor();
  const first = await publish("auto on webtransport");
  const item = page.locator(`#pane-auto [data-role=received] li[data-id="${first}"]`);
  await item.waitFor();
  assert.match(await item.locator(".meta").textContent(), /via webtransport\b/);

  await page.check('#pane-auto [data-refuse="webtransport"]');
  const during = await publish("while leaving webtransport");
  await page.locator('#pane-auto[data-using="websocket"] [data-role=status][data-state=live]').waitFor();
  const next = await publish("auto on websocket");
  for (const id of [during, next]) await page.locator(`#pane-auto [data-role=received] li[data-id="${id}"]`).waitFor();
  const shown = await page.locator("#pane-auto [data-role=received] li[data-id]").evaluateAll((items) => items.map((li) => Number(li.dataset.id)));
  for (const id of [first, during, next]) assert.equal(shown.filter((x) => x === id).length, 1, `#${id} once`);

  await page.uncheck('#pane-auto [data-refuse="webtransport"]');
  await page.locator('#pane-auto[data-using="webtransport"] [data-role=status][data-state=live]').waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test("a paused WebTransport pane resumes from its cursor with what it missed", async () => {
  const { context, page, errors } = await labOverHttps();
  await page.click('#pane-webtransport [data-action=pause]');
  const missed = [await publish("missed 1"), await publish("missed 2")];
  await page.click('#pane-webtransport [data-action=pause]');
  for (const id of missed) {
    const item = page.locator(`#pane-webtransport [data-role=received] li[data-id="${id}"]`);
    await item.waitFor();
    assert.match(await item.locator(".meta").textContent(), /caught up after a pause/);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test("a lab on plain HTTP uses WebTransport too, with --webtransport-self-signed", async () => {
  const server = await startServer(["--webtransport-self-signed"]);
  try {
    assert.match(server.base, /^http:/);
    const { page, errors } = await openLab(shared.browser, server.base);
    await page.locator("#pane-webtransport [data-role=status][data-state=live]").waitFor();
    await page.locator('#pane-auto[data-using="webtransport"] [data-role=status][data-state=live]').waitFor();
    const id = await publishPlain(server.base, "from a plain page, over QUIC");
    for (const pane of ["webtransport", "auto"]) {
      await page.locator(`#pane-${pane} [data-role=received] li[data-id="${id}"]`).waitFor();
    }
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await server.stop();
  }
});

// The lab behind Debian's nginx, with deploy/nginx.conf as a user would copy
// it: two server processes on one Redis, round robin (Socket.IO sticky by
// address), in headless Chromium. Every pane receives what is published;
// SSE arrives unbuffered; and when the process a pane was connected to
// stops, the pane resumes on the other one with nothing lost.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import {
  TRANSPORTS,
  freePort,
  launchBrowser,
  openLab,
  publish,
  screenshot,
  shownIds,
  startRedis,
  startServerOnRedis,
} from "./support.mjs";

const CONFIG = resolve(dirname(fileURLToPath(import.meta.url)), "../../deploy/nginx.conf");
const NGINX = process.env.NGINX_BIN ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx");

/**
 * deploy/nginx.conf with its three addresses moved to free ports, run in a
 * directory of its own; resolves once nginx answers.
 */
async function startNginx(listen, upstreams) {
  const prefix = mkdtempSync(join(tmpdir(), "notify-e2e-nginx-"));
  mkdirSync(join(prefix, "tmp"));
  const config = readFileSync(CONFIG, "utf8")
    .replaceAll("127.0.0.1:8080", `127.0.0.1:${listen}`)
    .replaceAll("127.0.0.1:8081", `127.0.0.1:${upstreams[0]}`)
    .replaceAll("127.0.0.1:8082", `127.0.0.1:${upstreams[1]}`);
  writeFileSync(join(prefix, "nginx.conf"), config);
  const nginx = spawn(NGINX, ["-p", prefix, "-c", join(prefix, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  const base = `http://127.0.0.1:${listen}/`;
  for (let attempt = 0; ; attempt++) {
    try {
      if ((await fetch(new URL("/healthz", base))).ok) break;
    } catch (error) {
      if (attempt > 100) throw new Error(`nginx did not answer: ${error.message}`);
    }
    await new Promise((wait) => setTimeout(wait, 100));
  }
  return {
    base,
    async stop() {
      nginx.kill("SIGQUIT");
      await new Promise((done) => (nginx.exitCode === null ? nginx.once("exit", done) : done()));
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}

const shared = {};
before(async () => {
  shared.redis = await startRedis();
  const ports = [await freePort(), await freePort()];
  // The processes believe X-Forwarded-For from nginx, on loopback.
  shared.servers = [];
  for (const port of ports) {
    shared.servers.push(await startServerOnRedis(shared.redis.url, ["--trusted-proxy", "127.0.0.1"], `127.0.0.1:${port}`));
  }
  shared.nginx = await startNginx(await freePort(), ports);
  shared.browser = await launchBrowser();
});
after(async () => {
  await shared.browser?.close();
  await shared.nginx?.stop();
  for (const server of shared.servers ?? []) await server.stop();
  shared.redis?.stop();
});

test("through nginx every pane receives a notification, SSE unbuffered", async () => {
  const { page, errors } = await openLab(shared.browser, shared.nginx.base);
  // Requests go to both processes: they answer with their own pid.
  const processes = new Set();
  for (let i = 0; i < 4; i++) processes.add((await (await fetch(new URL("/api/time", shared.nginx.base))).json()).process);
  assert.equal(processes.size, 2, `round robin over two processes: ${[...processes]}`);

  const id = await publish(shared.nginx.base, "through the proxy");
  for (const transport of TRANSPORTS) {
    await page.locator(`#pane-${transport} [data-role=received] li[data-id="${id}"]`).waitFor();
  }
  // A buffering proxy would hold the event until kilobytes of heartbeats
  // had piled up behind it; unbuffered, it arrives as fast as over the
  // WebSocket beside it.
  const latency = async (transport) =>
    Number((await page.locator(`#pane-${transport} [data-counter=last-latency]`).textContent()).replace(/ ms$/, ""));
  const sse = await latency("sse");
  assert.ok(sse < 2000, `SSE arrived ${sse} ms after publishing`);
  await screenshot(page, "lab-nginx.png");
  assert.deepEqual(errors, []);
  await page.close();
});

test("when a process stops, every pane resumes on the other with nothing lost", async () => {
  const { page } = await openLab(shared.browser, shared.nginx.base);
  const before = await publish(shared.nginx.base, "before the stop");
  for (const transport of TRANSPORTS) {
    await page.locator(`#pane-${transport} [data-role=received] li[data-id="${before}"]`).waitFor();
  }
  // One process goes away; its connections are cut, nginx sends what
  // follows to the other, and the clients come back through it.
  await shared.servers[0].stop();
  const after = [];
  for (const n of [1, 2, 3]) after.push(await publish(shared.nginx.base, `after the stop ${n}`));
  for (const transport of TRANSPORTS) {
    await page.locator(`#pane-${transport} [data-role=received] li[data-id="${after[2]}"]`).waitFor({ timeout: 45_000 });
    const ids = await shownIds(page, transport);
    for (const id of [before, ...after]) assert.equal(ids.filter((x) => x === id).length, 1, `${transport} shows #${id} once`);
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), `${transport} in order`);
    assert.equal(await page.locator(`#pane-${transport} [data-role=received] li.reset`).count(), 0, `${transport}: the same history, no reset`);
  }
  await page.close();
});

// What the browser tests share: start the real server binary on a free
// loopback port, publish through the real API, and drive Debian's Chromium.

import { spawn } from "node:child_process";
import { request } from "node:https";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = join(ROOT, "test-artifacts");
export const TOKEN = "e2e-admin-token";

/**
 * Starts target/debug/notify-server on `addr` (a free port by default) and
 * waits for its address (and, over HTTPS, its certificate's fingerprint).
 */
export async function startServer(extraArgs = [], addr = "127.0.0.1:0") {
  const binary = process.env.NOTIFY_SERVER_BIN ?? join(ROOT, "target/debug/notify-server");
  const child = spawn(binary, ["--addr", addr, ...extraArgs], {
    env: { ...process.env, NOTIFY_ADMIN_TOKEN: TOKEN, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const { base, fingerprint } = await new Promise((resolveBase, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      // The server's own line, not the WebTransport line beside it.
      const address = out.match(/^\S+ listening on (https?:\/\/127\.0\.0\.1:\d+\/)$/m)?.[1];
      const fingerprint = out.match(/SHA-256 fingerprint ([0-9A-F:]+)\n/)?.[1] ?? null;
      if (address && (address.startsWith("http:") || fingerprint)) {
        clearTimeout(timer);
        resolveBase({ base: address, fingerprint });
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  return {
    base,
    /** The SHA-256 fingerprint the server printed for its certificate, over HTTPS. */
    fingerprint,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return; // stopped already
      child.kill("SIGTERM");
      await new Promise((done) => child.once("exit", done));
    },
  };
}

/** A free loopback port. */
export function freePort() {
  return new Promise((resolvePort) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** A redis-server of the caller's own on a free loopback port, keeping nothing on disk. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "notify-e2e-redis-"));
  const redis = spawn("redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--dir", dir], {
    stdio: "ignore",
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop() {
      redis.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a server on the hub in `redisUrl` once that Redis answers. */
export async function startServerOnRedis(redisUrl, extraArgs = [], addr = "127.0.0.1:0") {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startServer(["--redis", redisUrl, ...extraArgs], addr);
    } catch (error) {
      if (attempt > 50) throw error;
      await new Promise((wait) => setTimeout(wait, 100));
    }
  }
}

/**
 * A server and a browser for the tests of one file: started before the
 * first test, stopped after the last. Read `.server` and `.browser` inside
 * tests.
 */
export function serverAndBrowser() {
  const shared = { server: null, browser: null };
  before(async () => {
    shared.server = await startServer();
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close();
    await shared.server?.stop();
  });
  return shared;
}

/** Headless Chromium from the distribution, with no network of its own. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Publishes over HTTPS to a certificate no authority signed: the chain is
 * not checked, the certificate is, by the fingerprint the server printed.
 */
export function publishPinned(base, fingerprint, text) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ text });
    const req = request(
      new URL("/api/notifications", base),
      {
        method: "POST",
        rejectUnauthorized: false,
        // A fresh handshake each time: a resumed TLS session shows no certificate.
        agent: false,
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
      },
      (res) => {
        const served = res.socket.getPeerCertificate().fingerprint256;
        let data = "";
        res.on("data", (chunk) => (data += chunk));
        res.on("end", () => {
          if (served !== fingerprint) reject(new Error(`served ${served}, printed ${fingerprint}`));
          else if (res.statusCode !== 201) reject(new Error(`publish answered ${res.statusCode}: ${data}`));
          else resolve(JSON.parse(data).id);
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Publishes through POST /api/notifications; returns the new id. */
export async function publish(base, text) {
  const response = await fetch(new URL("/api/notifications", base), {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`publish answered ${response.status}: ${JSON.stringify(body)}`);
  return body.id;
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });
}

/** A picture of one part of a page, for the docs. */
export async function screenshotOf(locator, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await locator.screenshot({ path: join(ARTIFACTS, name) });
}

export const TRANSPORTS = ["short-poll", "long-poll", "websocket", "sse", "socketio", "auto"];

/** The number a pane's counter shows. */
export async function counter(page, transport, name) {
  const text = await page.locator(`#pane-${transport} [data-counter=${name}]`).textContent();
  return Number(text.replaceAll(",", ""));
}

/** The ids a pane shows, top (newest) to bottom. */
export async function shownIds(page, transport) {
  return page
    .locator(`#pane-${transport} [data-role=received] li[data-id]`)
    .evaluateAll((items) => items.map((item) => Number(item.dataset.id)));
}

/** Opens the lab and waits until every pane is connected. */
export async function openLab(browser, base, viewport = { width: 1400, height: 1000 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(base);
  for (const transport of TRANSPORTS) {
    await page.locator(`#pane-${transport} [data-role=status][data-state=live]`).waitFor();
  }
  return { page, errors };
}

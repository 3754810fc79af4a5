// Shared helpers for the end-to-end tests: start/stop pos-sim, launch Chromium with a
// persistent profile (IndexedDB on disk), drive the demo POS page in www/ like a cashier.
//
// Environment: POS_SIM_BIN (default <repo>/target/debug/pos-sim), CHROMIUM (default
// /usr/bin/chromium), POS_SIM_WWW / POS_SIM_PKG (default <repo>/www, <repo>/pkg),
// E2E_ARTIFACTS (where failure screenshots go; default a temp dir), E2E_WAIT_MS (default 20000),
// E2E_POS_QUERY (query string for the page, e.g. "?forwardIntervalMs=300" to make the SDK's
// forwarding timer race the "Forward now" button).

import { spawn } from "node:child_process";
import { mkdtemp, rm, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { test } from "node:test";

// createRequire honours NODE_PATH, so playwright-core may live outside the repo.
const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const POS_SIM_BIN = process.env.POS_SIM_BIN || path.join(REPO_ROOT, "target", "debug", "pos-sim");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Generous but bounded wait for anything the UI does. */
export const WAIT_MS = Number(process.env.E2E_WAIT_MS) || 20_000;

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// pos-sim

/**
 * Starts pos-sim on ephemeral ports with its own SQLite file (`www`: serve another copy of www/).
 * Returns { url, api, readers, dir, stderrTail(), stop() }.
 */
export async function startSim({ readers = 2, extraArgs = [], readyTimeoutMs = 30_000, www } = {}) {
  if (!existsSync(POS_SIM_BIN)) {
    throw new Error(`pos-sim binary not found at ${POS_SIM_BIN} (build it with \`cargo build -p pos-sim\` or set POS_SIM_BIN)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), "pos-e2e-sim-"));
  const args = [
    "serve",
    "--port", "0",
    "--api-port", "0",
    "--readers", String(readers),
    "--db", path.join(dir, "sim.db"),
    "--www", www || process.env.POS_SIM_WWW || path.join(REPO_ROOT, "www"),
    "--pkg", process.env.POS_SIM_PKG || path.join(REPO_ROOT, "pkg"),
    ...extraArgs,
  ];
  const child = spawn(POS_SIM_BIN, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });

  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (stderr.length > 64_000) stderr = stderr.slice(-48_000);
  });

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const info = await new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      fail(new Error(`pos-sim did not print POS_SIM_READY within ${readyTimeoutMs} ms`));
    }, readyTimeoutMs);
    function fail(err) {
      clearTimeout(timer);
      child.kill("SIGKILL");
      err.message += `\n--- pos-sim ${args.join(" ")}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr.slice(-4000)}`;
      reject(err);
    }
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const line = stdout.split("\n").find((l) => l.startsWith("POS_SIM_READY "));
      if (!line) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line.slice("POS_SIM_READY ".length)));
      } catch (err) {
        fail(new Error(`could not parse READY line: ${line} (${err.message})`));
      }
    });
    child.on("exit", (code, signal) => fail(new Error(`pos-sim exited early (code ${code}, signal ${signal})`)));
    child.on("error", (err) => fail(err));
  });
  child.removeAllListeners("error");
  child.on("error", () => {});

  const url = info.url.endsWith("/") ? info.url : `${info.url}/`;
  return {
    url,
    api: info.api,
    readers: info.readers,
    dir,
    child,
    stderrTail: (n = 4000) => stderr.slice(-n),
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const done = await Promise.race([exitPromise, sleep(5000).then(() => null)]);
        if (!done) {
          child.kill("SIGKILL");
          await Promise.race([exitPromise, sleep(5000)]);
        }
      }
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

async function simFetch(sim, method, p, body) {
  const res = await fetch(new URL(p.replace(/^\//, ""), sim.url), {
    method,
    headers: body === undefined ? undefined : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p} → HTTP ${res.status}: ${text.slice(0, 500)}`);
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

export const simGet = (sim, p) => simFetch(sim, "GET", p);
export const simPost = (sim, p, body = {}) => simFetch(sim, "POST", p, body);
/** The POS's link to the backend only (`/_sim/network`); the readers' own links stay as they are. */
export const setPosLink = (sim, down, latencyMs) =>
  simPost(sim, "/_sim/network", latencyMs === undefined ? { down } : { down, latency_ms: latencyMs });
/**
 * The shop's whole network: the POS's link and every reader's own link (pos-sim's readers
 * process and store payments over their own link, so a POS-only outage goes through them).
 */
export async function setNetwork(sim, down, latencyMs) {
  const now = await setPosLink(sim, down, latencyMs);
  const readers = await simGet(sim, "/_sim/readers");
  for (const r of Array.isArray(readers) ? readers : []) {
    await simPost(sim, `/_sim/readers/${encodeURIComponent(r.id)}/network`, { down });
  }
  return now;
}
export const presentCard = (sim, readerId, number) => simPost(sim, `/_sim/readers/${readerId}/card`, { number });

// ---------------------------------------------------------------------------
// Browser

/**
 * Launches Chromium with a fresh persistent profile (IndexedDB survives reloads) and one page.
 * Records console errors, page errors and failed requests for failure reports.
 * `backForwardCache: true` keeps Chromium's back/forward cache on (playwright turns it off).
 */
export async function launchBrowser({ backForwardCache = false, profileDir: reuse } = {}) {
  // `profileDir` reopens a profile a killed browser left behind.
  const profileDir = reuse ?? (await mkdtemp(path.join(tmpdir(), "pos-e2e-profile-")));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    ignoreDefaultArgs: backForwardCache ? ["--disable-back-forward-cache"] : undefined,
    viewport: { width: 1280, height: 900 },
    locale: "en-US",
    timezoneId: "UTC",
  });
  context.setDefaultTimeout(WAIT_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  const diagnostics = [];
  const note = (kind, text) => diagnostics.push(`[${new Date().toISOString()}] ${kind}: ${text}`);
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") note(`console.${msg.type()}`, msg.text());
  });
  page.on("pageerror", (err) => note("pageerror", err.stack || err.message));
  page.on("requestfailed", (req) => note("requestfailed", `${req.method()} ${req.url()} ${req.failure()?.errorText ?? ""}`));
  page.on("crash", () => note("crash", "page crashed"));

  return {
    context,
    page,
    profileDir,
    diagnostics,
    async close() {
      await context.close().catch(() => {});
      await rm(profileDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * Runs a test body; on failure prints the browser's console/page errors, the last UI events,
 * pos-sim's stderr tail, and saves a screenshot, then rethrows.
 */
export async function withDiagnostics(name, { browser, sim }, fn) {
  try {
    await fn();
  } catch (err) {
    const lines = [`\n===== diagnostics for "${name}" =====`];
    if (browser) {
      lines.push("--- browser console/page errors:", ...(browser.diagnostics.length ? browser.diagnostics.slice(-60) : ["(none)"]));
      try {
        const events = await browser.page.evaluate(() => (window.posDemo?.events ?? []).slice(-25));
        lines.push("--- last posDemo events:", ...events.map((e) => `${e.type} ${JSON.stringify(e.payload)}`));
        const result = await browser.page.locator("#last-result").innerText({ timeout: 2000 });
        lines.push(`--- #last-result: ${result.replace(/\s+/g, " ")}`);
      } catch (e) {
        lines.push(`(could not read page state: ${e.message})`);
      }
      try {
        const dir = process.env.E2E_ARTIFACTS || path.join(tmpdir(), "pos-e2e-artifacts");
        await mkdir(dir, { recursive: true });
        const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}-${Date.now()}.png`);
        await browser.page.screenshot({ path: file, fullPage: true, timeout: 5000 });
        lines.push(`--- screenshot: ${file}`);
      } catch (e) {
        lines.push(`(no screenshot: ${e.message})`);
      }
    }
    if (sim) lines.push("--- pos-sim stderr (tail):", sim.stderrTail(Number(process.env.E2E_SIM_LOG_CHARS) || 3000));
    console.error(lines.join("\n"));
    throw err;
  }
}

// ---------------------------------------------------------------------------
// The demo page, driven like a cashier would

/** Opens the POS page and waits for window.posDemo.ready (terminal created, list rendered). */
export async function openPos(page, sim, query = process.env.E2E_POS_QUERY || "") {
  await page.goto(sim.url + query, { waitUntil: "load" });
  await waitReady(page);
}

export async function waitReady(page) {
  await page.waitForFunction(() => !!window.posDemo, null, { timeout: WAIT_MS });
  const ok = await page.evaluate(async (ms) => {
    const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error(`posDemo.ready not settled in ${ms} ms`)), ms));
    try {
      await Promise.race([window.posDemo.ready, timeout]);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: `${err?.code ?? ""} ${err?.message ?? err}` };
    }
  }, WAIT_MS);
  assert.ok(ok.ok, `posDemo.ready rejected: ${ok.error}`);
}

/** Picks a reader in #reader-select and connects it (no-op if already connected to it). */
export async function connectReader(page, readerId) {
  const status = page.locator("#reader-status");
  if ((await status.getAttribute("data-status")) === "connected") return;
  await page.locator(`#reader-select option[value="${readerId}"]`).waitFor({ state: "attached" });
  await page.selectOption("#reader-select", readerId);
  await page.click("#connect-btn");
  await page.locator('#reader-status[data-status="connected"]').waitFor();
}

/** Types an amount in minor units on the keypad, e.g. "1000" for $10.00. */
export async function enterAmount(page, digits) {
  await page.click('#keypad button[data-key="clear"]');
  for (const d of String(digits)) await page.click(`#keypad button[data-key="${d}"]`);
  assert.equal(await page.locator("#amount").getAttribute("data-amount"), String(Number(digits)));
}

/**
 * Enters an amount, picks the offline behaviour, presses Charge and waits for the next result.
 * Returns { status, code, text, paymentId }.
 */
export async function pay(page, digits, { offlineBehavior = "prefer_online", currency = "usd", settled } = {}) {
  await page.selectOption("#currency", currency);
  await page.selectOption("#offline-behavior", offlineBehavior);
  await enterAmount(page, digits);
  const seq = Number(await page.locator("#last-result").getAttribute("data-seq"));
  await page.locator("#pay-btn:not([disabled])").waitFor();
  await page.click("#pay-btn");
  return waitResult(page, seq, settled);
}

/**
 * Waits until #last-result shows a result newer than `seq`; also waits for the page to settle:
 * by default Charge usable again, or the `settled` selector (e.g. the Retry button when Charge
 * stays locked after an unknown outcome).
 */
export async function waitResult(page, seq, settled = "#pay-btn:not([disabled])") {
  await page.waitForFunction(
    (s) => Number(document.querySelector("#last-result")?.dataset.seq) > s,
    seq,
    { timeout: WAIT_MS },
  );
  await page.locator(settled).waitFor();
  return page.evaluate(() => {
    const r = document.querySelector("#last-result");
    return {
      status: r.dataset.status,
      code: r.dataset.code || null,
      paymentId: r.dataset.paymentId || null,
      text: r.innerText.replace(/\s+/g, " ").trim(),
    };
  });
}

/** The stored payments table as [{ id, state, text }] (newest first). */
export function storedRows(page) {
  return page.$$eval("#stored-payments tbody tr[data-id]", (trs) =>
    trs.map((tr) => ({ id: tr.dataset.id, state: tr.dataset.state, text: tr.innerText.replace(/\s+/g, " ").trim() })),
  );
}

/**
 * Steps of one scenario that depend on each other: `step(name, fn)` registers a test that is
 * skipped once an earlier step failed; `onFailure(name, err)` may print diagnostics first.
 */
export function dependentSteps(onFailure = async () => {}) {
  let broken = null;
  return (name, fn) =>
    test(name, async (t) => {
      if (broken) {
        t.skip(`an earlier step failed: ${broken}`);
        return;
      }
      try {
        await fn(t);
      } catch (err) {
        broken = name;
        await onFailure(name, err);
        throw err;
      }
    });
}

/** Polls `fn` until it returns a truthy value, or fails with `message` and the last value. */
export async function eventually(fn, message, timeoutMs = WAIT_MS, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${message} (waited ${timeoutMs} ms; last value: ${JSON.stringify(last)}${lastErr ? `; last error: ${lastErr.message}` : ""})`);
    }
    await sleep(intervalMs);
  }
}

export async function bannerStatus(page) {
  return page.locator("#network-banner").getAttribute("data-status");
}

export async function pendingCount(page) {
  return Number((await page.locator("#pending-count").innerText()).trim());
}

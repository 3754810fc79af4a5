// Drives Firefox or WebKitGTK through their WebDriver servers with WebdriverIO, behind the few
// page operations the cross-engine scenarios need (the Chromium suite uses Playwright).
//
// Firefox: geckodriver, WebDriver BiDi (WebdriverIO's default), headless.
// WebKit: WebKitWebDriver + MiniBrowser, classic WebDriver (WebdriverIO's BiDi default fails
// there); needs an X display, so run under `xvfb-run -a`.
//
// Environment (set by `cargo xtask test`): E2E_ENGINE (firefox | webkit), E2E_DRIVER (the
// WebDriver server), E2E_BROWSER (the browser binary).

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

import { WAIT_MS } from "../helpers.mjs";

const require = createRequire(import.meta.url);
const { remote } = require("webdriverio");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const DEFAULTS = {
  firefox: { driver: "geckodriver", browser: "/usr/lib/firefox-esr/firefox-esr" },
  webkit: { driver: "/usr/bin/WebKitWebDriver", browser: "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser" },
};

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the engine's WebDriver server on a free port; resolves once it answers /status. */
async function startDriver(engine, driverPath) {
  const port = await freePort();
  const args =
    engine === "firefox"
      ? ["--host", "127.0.0.1", "--port", String(port), "--websocket-port", String(await freePort())]
      : [`--host=127.0.0.1`, `--port=${port}`];
  const child = spawn(driverPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const keep = (chunk) => {
    log += chunk;
    if (log.length > 32_000) log = log.slice(-24_000);
  };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  let exited = null;
  const exit = new Promise((resolve) => child.on("exit", (code, signal) => resolve((exited = { code, signal }))));
  child.on("error", (err) => keep(`spawn error: ${err.message}\n`));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`${driverPath} exited (${JSON.stringify(exited)}):\n${log}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/status`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${driverPath} did not answer /status within 30 s:\n${log}`);
    }
    await sleep(100);
  }
  return {
    port,
    log: () => log,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      if (!(await Promise.race([exit, sleep(5000).then(() => null)]))) child.kill("SIGKILL");
    },
  };
}

function capabilities(engine, browserPath) {
  if (engine === "firefox") {
    return {
      browserName: "firefox",
      "moz:firefoxOptions": {
        binary: browserPath,
        args: ["-headless"],
        prefs: { "datareporting.policy.dataSubmissionEnabled": false, "app.update.disabledForTesting": true },
      },
    };
  }
  return {
    browserName: "MiniBrowser",
    "webkitgtk:browserOptions": { binary: browserPath, args: ["--automation"] },
    "wdio:enforceWebDriverClassic": true,
  };
}

/**
 * Launches the engine named by E2E_ENGINE and returns a page with the operations the scenario
 * uses: goto, reload, evaluate, click, select, text, attr, waitFor, waitForFunction, close.
 */
export async function launchEngine(engine = process.env.E2E_ENGINE) {
  assert.ok(engine in DEFAULTS, `E2E_ENGINE must be firefox or webkit, not ${engine}`);
  const driverPath = process.env.E2E_DRIVER || DEFAULTS[engine].driver;
  const browserPath = process.env.E2E_BROWSER || DEFAULTS[engine].browser;
  const driver = await startDriver(engine, driverPath);
  let browser;
  try {
    browser = await remote({
      hostname: "127.0.0.1",
      port: driver.port,
      path: "/",
      logLevel: "warn",
      connectionRetryTimeout: 120_000,
      connectionRetryCount: 1,
      capabilities: capabilities(engine, browserPath),
    });
  } catch (err) {
    await driver.stop();
    err.message += `\n--- ${driverPath} log:\n${driver.log().slice(-4000)}`;
    throw err;
  }
  await browser.setTimeout({ script: WAIT_MS });

  /** Runs `fn(arg)` in the page; values cross as JSON so both protocols return the same. */
  async function evaluate(fn, arg) {
    const json = await browser.execute(
      `return (async () => JSON.stringify(await (${fn.toString()})(arguments[0]) ?? null))()`,
      arg === undefined ? null : arg,
    );
    return JSON.parse(json);
  }

  async function waitForFunction(fn, arg, message, timeout = WAIT_MS) {
    let last;
    try {
      await browser.waitUntil(
        async () => {
          last = await evaluate(fn, arg);
          return !!last;
        },
        { timeout, interval: 100 },
      );
    } catch (err) {
      throw new Error(`${message ?? fn.toString()} (waited ${timeout} ms; last value ${JSON.stringify(last)}): ${err.message}`);
    }
    return last;
  }

  const waitFor = (selector, timeout = WAIT_MS) =>
    waitForFunction((s) => !!document.querySelector(s), selector, `waiting for ${selector}`, timeout);

  return {
    engine,
    browser,
    async goto(url) {
      await browser.url(url);
    },
    /** A navigating reload: WebDriver's own `refresh` loses the service worker in Firefox. */
    async reload() {
      const before = await evaluate(() => performance.timeOrigin);
      await browser.execute(() => location.reload());
      await waitForFunction((t) => performance.timeOrigin !== t && document.readyState === "complete", before, "the page reloads");
    },
    evaluate,
    waitFor,
    waitForFunction,
    async click(selector) {
      await waitFor(selector);
      await browser.$(selector).click();
    },
    async select(selector, value) {
      await waitFor(`${selector} option[value="${value}"]`);
      await browser.$(selector).selectByAttribute("value", value);
    },
    text: (selector) => evaluate((s) => document.querySelector(s)?.innerText ?? null, selector),
    attr: (selector, name) => evaluate(([s, n]) => document.querySelector(s)?.getAttribute(n) ?? null, [selector, name]),
    driverLog: () => driver.log(),
    async close() {
      await browser.deleteSession().catch(() => {});
      await driver.stop();
    },
  };
}

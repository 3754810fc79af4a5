// Back/forward cache: leaving the page closes the terminal (reader socket closed, nothing
// held), and coming back restores the same page from Chromium's back/forward cache with a new
// terminal and the reader reconnected; a payment then works, and no callback fires twice.
//
// Playwright turns the back/forward cache off by default; this test turns it back on and
// checks that the restore really came from the cache (the page's JS state survived, and
// `pageshow` had `persisted: true`), reporting Chromium's reasons if it did not.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, launchBrowser, withDiagnostics, openPos, connectReader, pay, eventually, simGet } from "./helpers.mjs";

const READER = "rdr_sim_1";

const readerConnected = async (sim) => (await simGet(sim, "/_sim/readers")).find((r) => r.id === READER)?.connected;

describe("back/forward cache", { timeout: 3 * 60_000 }, () => {
  let sim;
  let browser;
  let page;

  before(async () => {
    sim = await startSim({ readers: 1 });
    browser = await launchBrowser({ backForwardCache: true });
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  test("a page restored from the back/forward cache has a working terminal", async () => {
    await withDiagnostics("bfcache restore", { browser, sim }, async () => {
      const cdp = await browser.context.newCDPSession(page);
      await cdp.send("Page.enable");
      const notCached = [];
      cdp.on("Page.backForwardCacheNotUsed", (e) => notCached.push(e));

      await openPos(page, sim);
      await connectReader(page, READER);
      const first = await pay(page, "1000");
      assert.equal(first.status, "succeeded", first.text);
      await page.evaluate(() => {
        window.__beforeLeaving = { terminal: window.posDemo.terminal, events: window.posDemo.events.length };
      });

      // Leave: pagehide closes the terminal, which disconnects the reader.
      await page.goto("about:blank");
      await eventually(async () => (await readerConnected(sim)) === false, "the reader socket is closed while the page is away");

      await page.goBack({ waitUntil: "commit" });
      await page.waitForFunction(() => !!window.posDemo, null);
      const restored = await page.evaluate(() => !!window.__beforeLeaving);
      assert.ok(restored, `the page was not restored from the back/forward cache: ${JSON.stringify(notCached)}`);

      const since = await page.evaluate(() => window.__beforeLeaving.events);
      const eventsSince = () => page.evaluate((n) => window.posDemo.events.slice(n), since);
      await eventually(
        async () => (await eventsSince()).some((e) => e.type === "terminal restored"),
        "the terminal is created again after the restore",
      );
      const lifecycle = (await eventsSince()).filter((e) => ["pagehide", "pageshow", "terminal restored"].includes(e.type));
      assert.deepEqual(
        lifecycle.map((e) => [e.type, e.payload]),
        [["pagehide", { persisted: true }], ["pageshow", { persisted: true }], ["terminal restored", { reader: READER }]],
      );
      assert.equal(await page.evaluate(() => window.posDemo.terminal !== window.__beforeLeaving.terminal), true, "a new terminal");
      await page.locator('#reader-status[data-status="connected"]').waitFor();
      assert.equal(await readerConnected(sim), true, "the reader is connected again");
      assert.equal(await page.locator("#connect-btn").innerText(), "Disconnect");

      const second = await pay(page, "1200");
      assert.equal(second.status, "succeeded", second.text);
      const after = await eventsSince();
      const count = (type, payload) => after.filter((e) => e.type === type && (payload === undefined || e.payload === payload)).length;
      assert.equal(count("onPaymentStatusChange", "processing"), 1, "one terminal reports the payment, once");
      assert.equal(count("onConnectionStatusChange", "connected"), 1, "one reconnection");
      assert.equal(count("processPayment"), 1);

      const payments = await simGet(sim, "/_sim/payments");
      assert.deepEqual(payments.map((p) => p.amount).sort((a, b) => a - b), [1000, 1200]);
      for (const p of payments) assert.equal(p.requests, 1);
    });
  });
});

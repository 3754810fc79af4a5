// The POS with no network at all: pos-sim's HTTP port (the page's origin) becomes unreachable
// and its backend goes down; a reload of `/` is served by the service worker from its
// precache, the SDK starts from the cached package, and a payment is stored offline. When
// the network is back it is forwarded, once.
//
// The page is opened through a TCP front for pos-sim's HTTP port that the test can take
// down (connection refused); the reader keeps its own port, as a reader on the shop's LAN.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, launchBrowser, withDiagnostics, waitReady, connectReader, pay, setNetwork, bannerStatus, eventually, WAIT_MS } from "./helpers.mjs";
import { waitControlled, startFront, assertEachOnce } from "./sw-helpers.mjs";

describe("offline app shell", { timeout: 4 * 60_000 }, () => {
  let sim;
  let front;
  let browser;

  before(async () => {
    sim = await startSim({ readers: 1 });
    front = await startFront(sim.url);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await front?.close();
    await sim?.stop();
  });

  test("with the origin unreachable, / loads from cache and stores a payment, forwarded once later", async () => {
    await withDiagnostics("offline app shell", { browser, sim }, async () => {
      const { page } = browser;
      await page.goto(front.url, { waitUntil: "load" });
      await waitReady(page);
      await waitControlled(page);
      // Installable: Chromium finds a valid manifest with icons and no installability error.
      const cdp = await browser.context.newCDPSession(page);
      const manifest = await cdp.send("Page.getAppManifest");
      assert.deepEqual(manifest.errors, [], "the manifest parses cleanly");
      assert.deepEqual((await cdp.send("Page.getInstallabilityErrors")).installabilityErrors, [], "installable");
      await cdp.detach();
      await connectReader(page, "rdr_sim_1"); // pairs, and saves a connection token

      await front.down();
      await setNetwork(sim, true);
      const refused = await page.evaluate(async () => {
        try {
          await fetch("/_sim/config", { cache: "no-store" });
          return false;
        } catch {
          return true;
        }
      });
      assert.ok(refused, "the origin itself is unreachable");

      await page.reload({ waitUntil: "load" });
      await waitReady(page);
      assert.equal(await page.locator("h1").innerText(), "Counter POS");
      const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0].workerStart > 0);
      assert.ok(nav, "the navigation went through the service worker");
      await eventually(async () => (await bannerStatus(page)) === "offline", "the banner says offline");

      await connectReader(page, "rdr_sim_1");
      const r = await pay(page, "2500");
      assert.equal(r.status, "stored_offline", r.text);

      await front.up();
      await setNetwork(sim, false);
      // The page's own timer (10 s by default) forwards it once the backend answers.
      await assertEachOnce(sim, [r.paymentId], "back online");
      await page.locator(`#stored-payments tr[data-id="${r.paymentId}"][data-state="forwarded"]`).waitFor({ timeout: WAIT_MS });
    });
  });

  test("with the origin hanging (accepting, never answering), / still opens from cache and lists the stored payment", async () => {
    await withDiagnostics("hanging origin", { browser, sim }, async () => {
      const { page } = browser;
      await page.goto(front.url, { waitUntil: "load" });
      await waitReady(page);
      await waitControlled(page);
      await connectReader(page, "rdr_sim_1");
      await setNetwork(sim, true);
      const r = await pay(page, "2600");
      assert.equal(r.status, "stored_offline", r.text);

      // A frozen server: the page's config request and each module would wait for ever.
      front.hang();
      try {
        await page.reload({ waitUntil: "load", timeout: WAIT_MS });
        await waitReady(page);
        await page.locator(`#stored-payments tr[data-id="${r.paymentId}"][data-state="pending"]`).waitFor({ timeout: WAIT_MS });
        await eventually(async () => (await bannerStatus(page)) === "offline", "the banner says offline");
      } finally {
        front.unhang();
      }
      await setNetwork(sim, false);
      await assertEachOnce(sim, [r.paymentId], "back online");
    });
  });
});

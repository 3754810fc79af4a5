// The service worker forwards with no page open: payments are stored offline from the POS,
// every POS page is closed, the network comes back, and a real SyncEvent (dispatched through
// the DevTools protocol from an about:blank page) makes the worker — the package
// initialised inside it — forward them. pos-sim must receive each key exactly once.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { withDiagnostics, openPos, connectReader, pay, setNetwork, eventually } from "./helpers.mjs";
import { simAndBrowser, waitControlled, dispatchSync, requestsByKey, assertEachOnce, storedStates } from "./sw-helpers.mjs";

describe("service worker forwarding with no page open", { timeout: 4 * 60_000 }, () => {
  const env = simAndBrowser();

  test("stored offline, pages closed, network back: the worker alone forwards each payment once", async () => {
    const { sim, browser } = env;
    await withDiagnostics("sw forwards with no page", { browser, sim }, async () => {
      const { page, context } = browser;
      // No page timer racing the worker: the page's own forwarding is not under test here.
      await openPos(page, sim, "?forwardIntervalMs=3600000");
      await waitControlled(page);
      assert.equal(await page.evaluate(() => window.posDemo.serviceWorker.state), "active");
      await connectReader(page, "rdr_sim_1");

      await setNetwork(sim, true);
      const ids = [];
      for (const amount of ["1200", "2300", "3400"]) {
        const r = await pay(page, amount);
        assert.equal(r.status, "stored_offline", r.text);
        ids.push(r.paymentId);
      }
      assert.deepEqual(Object.values(await storedStates(page)), ["pending", "pending", "pending"]);

      // Every POS page closed; an about:blank page stays to reach DevTools from.
      const blank = await context.newPage();
      await page.close();
      await setNetwork(sim, false);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(await requestsByKey(sim, ids), {}, "nothing is forwarded before the sync");

      await dispatchSync(context, blank, sim.url);
      await assertEachOnce(sim, ids, "after the sync");

      // Back in the POS, the SDK sees them forwarded (by the worker).
      const again = await context.newPage();
      browser.page = again;
      await openPos(again, sim, "?forwardIntervalMs=3600000");
      const states = await eventually(async () => {
        const s = await storedStates(again);
        return Object.values(s).every((v) => v === "forwarded") ? s : null;
      }, "all three forwarded in the store");
      assert.deepEqual(Object.keys(states).sort(), [...ids].sort());
      await assertEachOnce(sim, ids, "still once after the page reopened");
    });
  });
});

// The page and the service worker forward at the same moment: both take the Web Lock
// "pos-terminal-forward", so each stored payment is sent by exactly one of them, once.
// The backend answers slowly so the two runs really overlap.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { withDiagnostics, openPos, connectReader, pay, setNetwork, eventually } from "./helpers.mjs";
import { simAndBrowser, waitControlled, assertEachOnce, storedStates } from "./sw-helpers.mjs";

describe("page and service worker forwarding at once", { timeout: 4 * 60_000 }, () => {
  const env = simAndBrowser();

  test("each key is charged once, each payment sent by one of them", async () => {
    const { sim, browser } = env;
    await withDiagnostics("page and sw at once", { browser, sim }, async () => {
      const { page } = browser;
      await openPos(page, sim, "?forwardIntervalMs=3600000");
      await waitControlled(page);
      await connectReader(page, "rdr_sim_1");
      await setNetwork(sim, true);
      const ids = [];
      for (const amount of ["1100", "1200", "1300", "1400"]) {
        const r = await pay(page, amount, { offlineBehavior: "force_offline" });
        assert.equal(r.status, "stored_offline", r.text);
        ids.push(r.paymentId);
      }
      await setNetwork(sim, false, 250);

      const [inPage, inWorker] = await page.evaluate(async () => {
        const settle = (p) => p.then((report) => ({ report }), (e) => ({ error: `${e.code}: ${e.message}` }));
        return Promise.all([
          settle(window.posDemo.terminal.forwardStoredPayments()),
          settle(window.posDemo.forwardInWorker()),
        ]);
      });
      assert.ok(inPage.report, `page run: ${inPage.error}`);
      assert.ok(inWorker.report, `worker run: ${inWorker.error}`);
      assert.equal(inPage.report.forwarded + inWorker.report.forwarded, ids.length, "each payment forwarded by exactly one of them");
      await assertEachOnce(sim, ids, "page + worker");
      await eventually(async () => Object.values(await storedStates(page)).every((s) => s === "forwarded"), "all forwarded");
    });
  });
});

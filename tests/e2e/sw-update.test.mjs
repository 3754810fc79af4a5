// A new service worker version while payments are pending: it installs, takes over while the
// old one may still be forwarding, drops the old precache, and every payment is forwarded
// afterwards exactly once.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startSim, launchBrowser, withDiagnostics, openPos, connectReader, pay, setNetwork, eventually, REPO_ROOT } from "./helpers.mjs";
import { waitControlled, dispatchSync, assertEachOnce, storedStates } from "./sw-helpers.mjs";

/** The VERSION of the worker controlling `page`, asked by message. */
function workerVersion(page) {
  return page.evaluate(
    () =>
      new Promise((resolve) => {
        const worker = navigator.serviceWorker.controller;
        if (!worker) return resolve(null);
        const channel = new MessageChannel();
        channel.port1.onmessage = ({ data }) => resolve(data.version);
        worker.postMessage({ type: "pos-status" }, [channel.port2]);
        setTimeout(() => resolve(null), 3000);
      }),
  );
}

describe("service worker update with payments pending", { timeout: 4 * 60_000 }, () => {
  let sim;
  let browser;
  let www;

  before(async () => {
    www = await mkdtemp(path.join(tmpdir(), "pos-e2e-www-"));
    await cp(process.env.POS_SIM_WWW || path.join(REPO_ROOT, "www"), www, { recursive: true });
    sim = await startSim({ readers: 1, www });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
    await rm(www, { recursive: true, force: true });
  });

  test("the new version activates and every pending payment is forwarded once", async () => {
    await withDiagnostics("sw update", { browser, sim }, async () => {
      const { page, context } = browser;
      await openPos(page, sim, "?forwardIntervalMs=3600000");
      await waitControlled(page);
      const oldVersion = await workerVersion(page);
      assert.ok(oldVersion, "the worker answers with its version");
      await connectReader(page, "rdr_sim_1");

      await setNetwork(sim, true);
      const ids = [];
      for (const amount of ["2100", "2200", "2300"]) {
        const r = await pay(page, amount, { offlineBehavior: "force_offline" });
        assert.equal(r.status, "stored_offline", r.text);
        ids.push(r.paymentId);
      }

      // Back online but slow: the old worker starts forwarding, and the update lands meanwhile.
      await setNetwork(sim, false, 300);
      const newVersion = `${oldVersion}-next`;
      const swPath = path.join(www, "sw.js");
      const source = await readFile(swPath, "utf8");
      const bumped = source.replace(/const VERSION = "[^"]*";/, `const VERSION = "${newVersion}";`);
      assert.notEqual(bumped, source, "sw.js has a VERSION line");
      await writeFile(swPath, bumped);
      await page.evaluate(async () => {
        window.oldRun = window.posDemo.forwardInWorker().then((r) => r, (e) => ({ error: e.code }));
        const registration = await navigator.serviceWorker.getRegistration();
        await registration.update();
      });

      await eventually(async () => (await workerVersion(page)) === newVersion, "the new version controls the page", 30_000, 500);
      // The new worker's activate drops the old precache (it may finish after the take-over).
      await eventually(async () => {
        const names = await page.evaluate(() => caches.keys());
        return names.length === 1 && names[0] === `pos-shell-${newVersion}`;
      }, "only the new precache is left");
      // Whatever the old run left, a sync to the new worker finishes.
      await dispatchSync(context, page, sim.url);
      await assertEachOnce(sim, ids, "after the update");
      await eventually(async () => Object.values(await storedStates(page)).every((s) => s === "forwarded"), "all forwarded");
    });
  });
});

// Issue 9: a browser killed (SIGKILL, every process) while an online payment's request is in
// flight leaves the payment's intent on disk, under the same id, to be forwarded with the same
// idempotency key (tests/reliability.rs proves an abandoned intent is forwarded once).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import {
  startSim,
  launchBrowser,
  openPos,
  connectReader,
  enterAmount,
  simPost,
  simGet,
  eventually,
  withDiagnostics,
} from "./helpers.mjs";

const READER = "rdr_sim_1";

/** Pids of the processes whose command line names `profileDir`: this test's browser. */
async function browserPids(profileDir) {
  const pids = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(profileDir)) pids.push(Number(entry));
  }
  return pids;
}

const intents = (page) =>
  page.evaluate(async () =>
    (await window.posDemo.terminal.listStoredPayments({ state: "intent" })).map((p) => p.id),
  );

describe("SIGKILL during an online payment", { timeout: 3 * 60_000 }, () => {
  let sim;
  let browser;
  let relaunched;

  before(async () => {
    sim = await startSim({ readers: 1 });
    browser = await launchBrowser();
    await openPos(browser.page, sim);
    await connectReader(browser.page, READER);
  });

  after(async () => {
    await relaunched?.close();
    await browser?.close();
    await sim?.stop();
  });

  test("the intent written before the request survives the kill, same id", async () => {
    await withDiagnostics("kill mid-request", { browser, sim }, async () => {
      const page = browser.page;
      // The backend never answers this one: the request is in flight when the browser dies.
      await simPost(sim, "/_sim/faults", { faults: [{ kind: "hang" }] });
      await page.selectOption("#offline-behavior", "require_online");
      await enterAmount(page, "2700");
      await page.locator("#pay-btn:not([disabled])").waitFor();
      await page.click("#pay-btn");
      let ids = [];
      await eventually(async () => {
        ids = await intents(page);
        return ids.length === 1;
      }, "the intent is written before the request");
      const pids = await browserPids(browser.profileDir);
      assert.ok(pids.length > 0, "the browser's processes are found");
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone with its parent.
        }
      }
      await eventually(async () => (await browserPids(browser.profileDir)).length === 0, "all gone");
      const received = await simGet(sim, "/_sim/payments");
      assert.equal(received.filter((p) => p.key === ids[0]).length, 0, "the backend recorded nothing");

      relaunched = await launchBrowser({ profileDir: browser.profileDir });
      await openPos(relaunched.page, sim);
      assert.deepEqual(await intents(relaunched.page), ids, "the same payment, still retryable");
      const status = await relaunched.page.evaluate(() => window.posDemo.terminal.offlineStatus());
      assert.equal(status.pendingCount, 0, "an intent is not a payment stored offline");
    });
  });
});

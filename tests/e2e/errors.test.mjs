// Payments that must NOT be stored, seen through the demo page: require_online during an
// outage, an online decline, a collect canceled by the cashier, an empty amount.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  POS_SIM_BIN,
  startSim,
  launchBrowser,
  withDiagnostics,
  openPos,
  connectReader,
  pay,
  enterAmount,
  waitResult,
  storedRows,
  eventually,
  pendingCount,
  setNetwork,
  simGet,
} from "./helpers.mjs";

const READER = "rdr_sim_1";

/** A slow card tap makes "cancel while waiting for the card" deterministic, if pos-sim supports it. */
function tapDelayArgs() {
  const help = spawnSync(POS_SIM_BIN, ["serve", "--help"], { encoding: "utf8", timeout: 10_000 });
  return `${help.stdout}${help.stderr}`.includes("--tap-delay-ms") ? ["--tap-delay-ms", "3000"] : [];
}

async function storedCount(page) {
  return page.evaluate(async () => (await window.posDemo.terminal.listStoredPayments()).length);
}

describe("payments that are not stored", { timeout: 5 * 60_000 }, () => {
  let sim;
  let browser;
  let page;

  before(async () => {
    sim = await startSim({ readers: 2, extraArgs: tapDelayArgs() });
    browser = await launchBrowser();
    page = browser.page;
    await openPos(page, sim);
    await connectReader(page, READER);
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  beforeEach(async () => {
    // Every test starts online with a connected reader.
    await setNetwork(sim, false);
    await connectReader(page, READER);
  });

  test("require_online while the backend is down → backend_unreachable, nothing stored", async () => {
    await withDiagnostics("require_online offline", { browser, sim }, async () => {
      // Cut the network with the simulator panel's own button.
      const toggle = page.locator("#sim-network-toggle");
      assert.equal(await toggle.getAttribute("data-down"), "false");
      await toggle.click();
      await page.locator('#sim-network-toggle[data-down="true"]').waitFor();
      assert.match(await toggle.innerText(), /restore/i);
      // And the reader's own link: a reader that processes payments would take it online.
      const readerLink = page.locator("#sim-reader-link-toggle");
      await readerLink.click();
      await page.locator('#sim-reader-link-toggle[data-down="true"]').waitFor();

      const r = await pay(page, "1500", { offlineBehavior: "require_online" });
      assert.equal(r.status, "error", r.text);
      assert.equal(r.code, "backend_unreachable", r.text);
      assert.match(r.text, /backend_unreachable/);

      assert.equal((await storedRows(page)).length, 0, "no row in the table");
      assert.equal(await pendingCount(page), 0);
      assert.equal(await storedCount(page), 0, "nothing in the SDK's store");

      await toggle.click();
      await page.locator('#sim-network-toggle[data-down="false"]').waitFor();
      await readerLink.click();
      await page.locator('#sim-reader-link-toggle[data-down="false"]').waitFor();
      assert.equal((await simGet(sim, "/_sim/payments")).length, 0, "the backend never saw it");
    });
  });

  test("an online decline → card_declined (generic_decline), nothing stored", async () => {
    await withDiagnostics("online decline", { browser, sim }, async () => {
      const storedBefore = await storedCount(page);
      const rowsBefore = (await storedRows(page)).length;
      // Present the declining test card with the simulator panel.
      await page.selectOption("#sim-card", "4000000000000002");
      await page.click("#sim-card-btn");
      await eventually(async () => /will present/.test(await page.locator("#sim-status").innerText()), "the sim panel confirms the card");

      const r = await pay(page, "1000");
      assert.equal(r.status, "error", r.text);
      assert.equal(r.code, "card_declined", r.text);
      assert.match(r.text, /card_declined \(generic_decline\)/);

      assert.equal((await storedRows(page)).length, rowsBefore, "no new row in the table");
      assert.equal(await storedCount(page), storedBefore, "nothing stored");

      const payments = await simGet(sim, "/_sim/payments");
      const declined = payments.filter((p) => p.amount === 1000);
      assert.equal(declined.length, 1, JSON.stringify(payments));
      assert.equal(declined[0].decline_code, "generic_decline");
      assert.equal(declined[0].requests, 1);
      assert.equal(declined[0].offline, false);

      // The next tap uses the default card again and is approved.
      const ok = await pay(page, "1000");
      assert.equal(ok.status, "succeeded", ok.text);
    });
  });

  test("cancel while waiting for the card → collect_canceled, reader still usable", async () => {
    await withDiagnostics("cancel collect", { browser, sim }, async () => {
      const before = (await simGet(sim, "/_sim/payments")).length;
      const storedBefore = await storedCount(page);
      await enterAmount(page, "1500");
      const seq = Number(await page.locator("#last-result").getAttribute("data-seq"));
      await page.click("#pay-btn");
      await page.locator("#cancel-btn:not([disabled])").waitFor();
      await eventually(async () => /Tap or insert card/.test(await page.locator("#payment-prompt").innerText()), "the page asks for the card", 10_000, 20);
      await page.click("#cancel-btn");
      const r = await waitResult(page, seq);
      assert.equal(r.status, "error", r.text);
      assert.equal(r.code, "collect_canceled", r.text);
      assert.match(r.text, /collect_canceled/);
      assert.equal(await page.locator("#cancel-btn").isDisabled(), true, "Cancel is disabled again");
      assert.equal(await page.locator("#pay-btn").isDisabled(), false, "Charge is usable again");

      assert.equal(await storedCount(page), storedBefore, "nothing stored");
      assert.equal((await simGet(sim, "/_sim/payments")).length, before, "nothing reached the backend");

      const ok = await pay(page, "1600");
      assert.equal(ok.status, "succeeded", ok.text);
    });
  });

  test("Charge with no amount → invalid_amount, nothing stuck", async () => {
    await withDiagnostics("empty amount", { browser, sim }, async () => {
      await page.click('#keypad button[data-key="clear"]');
      assert.equal(await page.locator("#amount").innerText(), "$0.00");
      const seq = Number(await page.locator("#last-result").getAttribute("data-seq"));
      await page.click("#pay-btn");
      const r = await waitResult(page, seq);
      assert.equal(r.code, "invalid_amount", r.text);
      assert.equal(await page.locator("#pay-btn").isDisabled(), false);
    });
  });
});

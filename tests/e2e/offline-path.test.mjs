// The offline path, end to end, as a cashier sees it: pay online, lose the network, keep
// taking payments (stored on the device), reload the page, get the network back, forward,
// and check that the backend charged every payment exactly once; then an offline payment
// that the backend declines once forwarded.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startSim,
  launchBrowser,
  withDiagnostics,
  openPos,
  waitReady,
  connectReader,
  pay,
  storedRows,
  eventually,
  bannerStatus,
  pendingCount,
  setNetwork,
  presentCard,
  simGet,
  WAIT_MS,
} from "./helpers.mjs";

const READER = "rdr_sim_1";

describe("offline path", { timeout: 5 * 60_000 }, () => {
  let sim;
  let browser;
  let page;
  let broken = null; // the steps depend on each other: after a failure the rest are skipped

  before(async () => {
    sim = await startSim({ readers: 2 });
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  // Each step runs only if the previous ones passed, with diagnostics on failure.
  function step(name, fn) {
    test(name, async (t) => {
      if (broken) {
        t.skip(`an earlier step failed: ${broken}`);
        return;
      }
      try {
        await withDiagnostics(name, { browser, sim }, fn);
      } catch (err) {
        broken = name;
        throw err;
      }
    });
  }

  step("1. the page loads and connects to reader 1", async () => {
    await openPos(page, sim);
    assert.equal(await page.locator("#sim-panel").isVisible(), true, "simulator panel is shown under pos-sim");
    assert.equal((await storedRows(page)).length, 0, "a fresh profile has no stored payments");
    await connectReader(page, READER);
    assert.match(await page.locator("#connect-btn").innerText(), /disconnect/i);
  });

  step("2. an online payment of $10.00 succeeds", async () => {
    const r = await pay(page, "1000");
    assert.equal(r.status, "succeeded", `result: ${r.text}`);
    assert.match(r.text, /\$10\.00/);
    assert.match(r.text, /Visa ••••4242/);
    assert.equal((await storedRows(page)).length, 0, "an online payment is not stored");
  });

  step("3. the backend goes down", async () => {
    await setNetwork(sim, true);
    // The SDK notices on the next request or health probe; nothing to require yet.
  });

  step("4. three payments while offline are stored on the device", async () => {
    const ids = [];
    for (const digits of ["1100", "1200", "1300"]) {
      const r = await pay(page, digits);
      assert.equal(r.status, "stored_offline", `payment of ${digits}: ${r.text}`);
      assert.ok(r.paymentId, "result shows the payment id");
      ids.push(r.paymentId);
    }
    await eventually(async () => (await bannerStatus(page)) === "offline", "the banner shows offline");
    assert.match(await page.locator("#network-banner").innerText(), /offline/i);

    await eventually(async () => {
      const rows = await storedRows(page);
      return rows.length === 3 && rows.every((r) => r.state === "pending");
    }, "the table shows 3 pending rows");
    const rows = await storedRows(page);
    assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(ids), "the table lists the stored payments");
    assert.equal(await pendingCount(page), 3);
    const amounts = rows.map((r) => r.text.match(/\$\d+\.\d\d/)?.[0]).sort();
    assert.deepEqual(amounts, ["$11.00", "$12.00", "$13.00"]);
    await eventually(
      async () => /3 payments waiting/.test(await page.locator("#network-banner").innerText()),
      "the banner shows 3 payments waiting",
    );
    assert.match(await page.locator("#network-banner").innerText(), /\$36\.00/);
  });

  step("5. the stored payments survive a page reload", async () => {
    await page.reload({ waitUntil: "load" });
    await waitReady(page);
    const rows = await storedRows(page);
    assert.equal(rows.length, 3, `rows after reload: ${JSON.stringify(rows)}`);
    // A forwarding attempt on load (the backend is still down) may show them briefly as "forwarding".
    await eventually(async () => (await storedRows(page)).every((r) => r.state === "pending"), "the 3 rows are pending");
    assert.equal(await pendingCount(page), 3);
  });

  step("6. back online, Forward now sends them", async () => {
    await setNetwork(sim, false);
    await page.locator("#forward-btn:not([disabled])").waitFor();
    await page.click("#forward-btn");
    // The page's own forwarding timer may race the button; either way all three end forwarded.
    await eventually(async () => {
      const rows = await storedRows(page);
      return rows.length === 3 && rows.every((r) => r.state === "forwarded");
    }, "all 3 rows end forwarded");
    await page.locator("#forward-btn:not([disabled])").waitFor();
    await eventually(
      async () => (await page.locator("#forward-report").getAttribute("data-status")) === "done",
      "the forward report is shown",
    );
    assert.match(await page.locator("#forward-report").innerText(), /Forwarded \d+ · declined 0 · failed 0 · remaining \d+/);
    assert.equal(await pendingCount(page), 0);
    const intents = await page.$$eval("#stored-payments tbody tr[data-id]", (trs) => trs.map((tr) => tr.dataset.paymentIntent || null));
    assert.ok(intents.every(Boolean), `every forwarded row shows its payment intent: ${JSON.stringify(intents)}`);
    await eventually(async () => (await bannerStatus(page)) === "online", "the banner shows online again");
    const forwarded = await page.evaluate(() => window.posDemo.events.filter((e) => e.type === "onPaymentForwarded").length);
    assert.equal(forwarded, 3, "onPaymentForwarded fired once per stored payment");
  });

  step("7. the backend charged each payment exactly once", async () => {
    const payments = await simGet(sim, "/_sim/payments");
    assert.equal(payments.length, 4, JSON.stringify(payments));
    for (const p of payments) assert.equal(p.requests, 1, `payment ${p.key} received ${p.requests} requests`);
    assert.deepEqual(payments.map((p) => p.amount).sort((a, b) => a - b), [1000, 1100, 1200, 1300]);
    const intents = await page.$$eval("#stored-payments tbody tr[data-id]", (trs) => trs.map((tr) => tr.dataset.paymentIntent));
    for (const pi of intents) {
      assert.ok(payments.some((p) => p.payment_intent === pi), `row intent ${pi} is one the backend created`);
    }
    for (const p of payments) {
      assert.equal(p.currency, "usd");
      assert.equal(p.offline, p.amount !== 1000, `offline flag of ${p.amount}`);
      assert.ok(!p.decline_code, `payment ${p.amount} was not declined`);
    }
  });

  step("8. an offline payment the backend declines ends declined", async () => {
    await connectReader(page, READER); // the reload dropped the reader connection
    await presentCard(sim, READER, "4000000000000002");
    await setNetwork(sim, true);
    const r = await pay(page, "2000");
    assert.equal(r.status, "stored_offline", `result: ${r.text}`);
    const id = r.paymentId;
    await page.locator(`#stored-payments tr[data-id="${id}"][data-state="pending"]`).waitFor();

    await setNetwork(sim, false);
    await page.locator("#forward-btn:not([disabled])").waitFor();
    await page.click("#forward-btn");
    const row = page.locator(`#stored-payments tr[data-id="${id}"]`);
    await page.locator(`#stored-payments tr[data-id="${id}"][data-state="declined"]`).waitFor({ timeout: WAIT_MS });
    assert.match(await row.innerText(), /generic_decline/);

    const failure = await eventually(
      () => page.evaluate(() => window.posDemo.events.find((e) => e.type === "onForwardingFailure")?.payload ?? null),
      "onForwardingFailure fired",
    );
    assert.equal(failure.code, "card_declined", JSON.stringify(failure));
    assert.equal(failure.declineCode, "generic_decline", JSON.stringify(failure));
    assert.equal(failure.payment?.id, id);

    // The earlier rows are untouched and nothing is pending.
    const rows = await storedRows(page);
    assert.equal(rows.filter((x) => x.state === "forwarded").length, 3);
    assert.equal(await pendingCount(page), 0);

    const payments = await simGet(sim, "/_sim/payments");
    assert.equal(payments.length, 5);
    const declined = payments.find((p) => p.amount === 2000);
    assert.ok(declined, "the backend saw the declined payment");
    assert.equal(declined.requests, 1);
    assert.equal(declined.offline, true);
    assert.equal(declined.decline_code, "generic_decline");
    for (const p of payments) assert.equal(p.requests, 1, `payment ${p.amount} received ${p.requests} requests`);
  });
});

// `payment_outcome_unknown`: the backend processed the payment but answered after the SDK's
// request timeout, and storing it offline was impossible (the offline per-payment limit is
// below the amount). The page offers Retry, which processes the SAME collected payment again;
// the backend recognises its id, so the card is charged exactly once.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startSim,
  launchBrowser,
  withDiagnostics,
  openPos,
  connectReader,
  pay,
  waitResult,
  storedRows,
  eventually,
  setPosLink,
  simGet,
  simPost,
} from "./helpers.mjs";

const READER = "rdr_sim_1";
// Test knobs of the demo page: a short request timeout, and an offline limit of $1.00.
const QUERY = "?requestTimeoutMs=1000&offlineTransactionLimit=100";

describe("retry after payment_outcome_unknown", { timeout: 3 * 60_000 }, () => {
  let sim;
  let browser;
  let page;

  before(async () => {
    sim = await startSim({ readers: 1 });
    browser = await launchBrowser();
    page = browser.page;
    // The reader's own link down: it would take the payment through otherwise (the same key,
    // charged once too); this is the SDK alone.
    await simPost(sim, `/_sim/readers/${READER}/network`, { down: true });
    await openPos(page, sim, QUERY);
    await connectReader(page, READER);
  });

  after(async () => {
    await setPosLink(sim, false, 0).catch(() => {});
    await browser?.close();
    await sim?.stop();
  });

  test("Retry processes the same payment again and the backend charges it once", async () => {
    await withDiagnostics("retry unknown outcome", { browser, sim }, async () => {
      // An online payment first: the connection token is fetched and cached while POSTs are fast.
      const warmup = await pay(page, "1000");
      assert.equal(warmup.status, "succeeded", warmup.text);
      assert.equal(await page.locator("#retry-box").isVisible(), false, "nothing to retry after a success");

      // The backend records the payment, then answers 3 s late: beyond requestTimeoutMs.
      await setPosLink(sim, false, 3000);
      const r = await pay(page, "1500", { settled: "#retry-btn:not([disabled])" });
      assert.equal(r.status, "error", r.text);
      assert.equal(r.code, "payment_outcome_unknown", r.text);
      assert.match(r.text, /Payment outcome unknown/);

      const box = page.locator("#retry-box");
      assert.equal(await box.isVisible(), true, "Retry is offered");
      assert.equal(await box.getAttribute("data-code"), "payment_outcome_unknown");
      const id = await box.getAttribute("data-payment-id");
      assert.ok(id, "the retry box names the held payment");
      assert.match(await box.innerText(), /charged at most once/);
      assert.equal(await page.locator("#retry-btn").isDisabled(), false);
      assert.equal(await page.locator("#pay-btn").isDisabled(), true, "Charge does not invite a second card");
      assert.equal((await storedRows(page)).length, 0, "nothing was stored offline");

      const reached = await eventually(
        async () => (await simGet(sim, "/_sim/payments")).find((p) => p.key === id),
        "the backend recorded the first attempt",
      );
      assert.equal(reached.amount, 1500);
      assert.equal(reached.requests, 1, "the first attempt did reach the backend");

      // The backend answers promptly again; Retry sends the same payment.
      await setPosLink(sim, false, 0);
      const seq = Number(await page.locator("#last-result").getAttribute("data-seq"));
      await page.click("#retry-btn");
      const again = await waitResult(page, seq);
      assert.equal(again.status, "succeeded", again.text);
      assert.equal(again.paymentId, id, "the retry is the same payment (same id)");
      assert.match(again.text, /\$15\.00/);
      assert.equal(await box.isVisible(), false, "nothing left to retry");
      assert.equal(await page.locator("#pay-btn").isDisabled(), false, "Charge is usable again");

      const payments = await simGet(sim, "/_sim/payments");
      const charged = payments.filter((p) => p.amount === 1500);
      assert.equal(charged.length, 1, `one charge of $15.00: ${JSON.stringify(payments)}`);
      assert.equal(charged[0].key, id);
      assert.equal(charged[0].requests, 2, "two requests with the same idempotency key");
      assert.ok(!charged[0].decline_code);
      assert.equal(payments.length, 2, "the warm-up and this one, nothing else");
      const retried = await page.evaluate(() => window.posDemo.events.filter((e) => e.type === "retry processPayment").length);
      assert.equal(retried, 1);
    });
  });

  test("Dismiss gives up the retry and unlocks Charge", async () => {
    await withDiagnostics("dismiss unknown outcome", { browser, sim }, async () => {
      await setPosLink(sim, false, 3000);
      const r = await pay(page, "1600", { settled: "#retry-btn:not([disabled])" });
      assert.equal(r.code, "payment_outcome_unknown", r.text);
      assert.equal(await page.locator("#pay-btn").isDisabled(), true);
      await setPosLink(sim, false, 0);
      await page.click("#discard-btn");
      assert.equal(await page.locator("#retry-box").isVisible(), false);
      assert.equal(await page.locator("#pay-btn").isDisabled(), false);
      const next = await pay(page, "1700");
      assert.equal(next.status, "succeeded", next.text);
      const charged = (await simGet(sim, "/_sim/payments")).filter((p) => p.amount === 1600);
      assert.equal(charged.length, 1, "the dismissed payment reached the backend once, and was not sent again");
      assert.equal(charged[0].requests, 1);
    });
  });

  test("a decline is final: no Retry is offered", async () => {
    await withDiagnostics("no retry after decline", { browser, sim }, async () => {
      const r = await pay(page, "1005"); // pos-sim declines amounts ending in 05
      assert.equal(r.code, "card_declined", r.text);
      assert.equal(await page.locator("#retry-box").isVisible(), false);
    });
  });
});

// `payment_outcome_unknown`: the backend processed the payment but answered after the SDK's
// request timeout, and storing it offline was impossible (the offline per-payment limit is
// below the amount). The page offers Retry, which processes the SAME collected payment again;
// the backend recognises its id, so the card is charged exactly once. There is no plain
// "Dismiss" for such a payment: the SDK sends its intent again under the same id about 5
// minutes later (it may already be charged), so "Set aside…" asks first and keeps the payment
// on screen until the SDK reports its outcome.
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
  waitReady,
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
      assert.equal(await page.locator("#discard-btn").isVisible(), false, "no plain Dismiss for an unknown outcome");
      assert.equal(await page.locator("#set-aside-btn").isVisible(), true);
      // Nothing was stored offline; the attempt's intent is listed, its outcome unknown.
      const rows = await eventually(async () => {
        const all = await storedRows(page);
        return all.length > 0 && all;
      }, "the intent is listed");
      assert.deepEqual(rows.map((p) => [p.id, p.state]), [[id, "intent"]], JSON.stringify(rows));
      assert.match(rows[0].text, /Outcome unknown — will be sent again under the same id/);

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
      await eventually(async () => (await storedRows(page)).length === 0, "the answered intent is gone from the table");

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

  test("Set aside asks first, keeps the payment on screen and never invites a second charge", async () => {
    await withDiagnostics("set aside unknown outcome", { browser, sim }, async () => {
      await setPosLink(sim, false, 3000);
      const r = await pay(page, "1600", { settled: "#retry-btn:not([disabled])" });
      assert.equal(r.code, "payment_outcome_unknown", r.text);
      const box = page.locator("#retry-box");
      const id = await box.getAttribute("data-payment-id");
      assert.ok(id);
      assert.equal(await page.locator("#pay-btn").isDisabled(), true);
      assert.equal(await page.locator("#discard-btn").isVisible(), false, "no plain Dismiss");
      assert.match(await box.innerText(), /same id/);
      await setPosLink(sim, false, 0);

      // "Set aside…" asks first, in words that do not invite another card; Charge stays locked.
      await page.click("#set-aside-btn");
      const confirm = page.locator("#set-aside-confirm");
      await confirm.waitFor();
      const text = await confirm.innerText();
      assert.match(text, /may still go through/);
      assert.match(text, /sends it again under the same id/);
      assert.match(text, /reported on this page/);
      assert.ok(text.includes(id) && text.includes("$16.00"), text);
      assert.doesNotMatch(text, /another card|new card|charge (it )?again|take .* card/i, text);
      assert.equal(await page.locator("#pay-btn").isDisabled(), true, "Charge stays locked while the cashier decides");

      // Back: Retry is still the way.
      await page.click("#set-aside-back-btn");
      assert.equal(await confirm.isVisible(), false);
      assert.equal(await page.locator("#retry-btn").isDisabled(), false);

      await page.click("#set-aside-btn");
      await page.click("#set-aside-confirm-btn");
      assert.equal(await box.isVisible(), false, "the Retry box is gone");
      assert.equal(await page.locator("#amount").getAttribute("data-amount"), "0", "the sale's amount is not left ready to charge");
      const item = page.locator(`#set-aside-list li[data-id="${id}"]`);
      assert.equal(await item.isVisible(), true, "the set-aside payment is shown");
      assert.equal(await item.getAttribute("data-outcome"), "unknown");
      const itemText = await item.innerText();
      assert.match(itemText, /\$16\.00/);
      assert.match(itemText, /Outcome unknown/);
      assert.match(itemText, /sent again under the same id/);
      assert.doesNotMatch(itemText, /another card|new card/i);
      assert.equal(await item.locator("button").count(), 0, "it cannot be removed before its outcome is known");
      const row = await eventually(
        async () => (await storedRows(page)).find((p) => p.id === id),
        "the set-aside payment's intent is listed",
      );
      assert.equal(row.state, "intent");
      assert.match(row.text, /Outcome unknown — will be sent again under the same id/);

      // The next sale goes on; the set-aside payment stays on screen.
      const next = await pay(page, "1700");
      assert.equal(next.status, "succeeded", next.text);
      assert.equal(await item.isVisible(), true, "still shown after the next sale");
      const charged = (await simGet(sim, "/_sim/payments")).filter((p) => p.amount === 1600);
      assert.equal(charged.length, 1, "the set-aside payment reached the backend once so far");
      assert.equal(charged[0].key, id);
    });
  });

  test("a decline is final: no Retry is offered", async () => {
    await withDiagnostics("no retry after decline", { browser, sim }, async () => {
      const r = await pay(page, "1005"); // pos-sim declines amounts ending in 05
      assert.equal(r.code, "card_declined", r.text);
      assert.equal(await page.locator("#retry-box").isVisible(), false);
    });
  });

  test("the set-aside payment's outcome arrives through the SDK and is shown", async () => {
    await withDiagnostics("set aside outcome", { browser, sim }, async () => {
      const item = page.locator("#set-aside-list li[data-outcome]");
      const id = await item.first().getAttribute("data-id");
      assert.ok(id, "a payment set aside by the test before");
      // The SDK sends an intent again once it is 5 minutes old: a fake clock jumps there.
      await page.clock.install();
      await page.reload({ waitUntil: "load" });
      await waitReady(page);
      const again = page.locator(`#set-aside-list li[data-id="${id}"]`);
      assert.equal(await again.getAttribute("data-outcome"), "unknown", "still shown after a reload");
      await page.clock.fastForward("06:00");
      await eventually(async () => (await again.getAttribute("data-outcome")) === "forwarded", "the outcome is shown", 60_000);
      assert.match(await again.innerText(), /Charged/);
      const forwarded = await page.evaluate(() => window.posDemo.events.filter((e) => e.type === "onPaymentForwarded").map((e) => e.payload.id));
      assert.ok(forwarded.includes(id), JSON.stringify(forwarded));
      const charged = (await simGet(sim, "/_sim/payments")).filter((p) => p.key === id);
      assert.equal(charged.length, 1, "charged once");
      assert.equal(charged[0].requests, 2, "sent again under the same id, answered with the first answer");
      // Once known, the cashier may remove it.
      await again.locator("button").click();
      assert.equal(await page.locator("#set-aside").isVisible(), false);
    });
  });
});

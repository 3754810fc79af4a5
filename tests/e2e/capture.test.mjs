// Manual capture through the package's JS API on the demo page, against pos-sim's reader
// (paired with its own credential) and backend: an online payment and one stored offline and
// forwarded are each captured once (a second capture answers the same), cancel after capture
// is refused with `payment_unexpected_state`, a payment still stored is
// `payment_not_forwarded`, and `ws://` to another host is refused with `insecure_reader_url`.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, launchBrowser, withDiagnostics, openPos, connectReader, simGet } from "./helpers.mjs";

const READER = "rdr_sim_1";

/** Collects a card on the connected reader and processes it, with `captureMethod: "manual"`. */
function payManual(page, amount, offlineBehavior = "prefer_online") {
  return page.evaluate(
    async ({ amount, offlineBehavior }) => {
      const t = window.posDemo.terminal;
      const collected = await t.collectPaymentMethod({ amount, currency: "usd", offlineBehavior, captureMethod: "manual" });
      return t.processPayment(collected);
    },
    { amount, offlineBehavior },
  );
}

/** Calls `terminal[method](id)`; resolves with { ok } or { code } (never rejects). */
function call(page, method, id) {
  return page.evaluate(
    async ({ method, id }) => {
      try {
        return { ok: await window.posDemo.terminal[method](id) };
      } catch (e) {
        return { code: e.code, name: e.name, message: e.message };
      }
    },
    { method, id },
  );
}

async function chargedOnce(sim, id) {
  const all = await simGet(sim, "/_sim/payments");
  const mine = all.filter((p) => p.key === id);
  assert.equal(mine.length, 1, `one record for ${id}`);
  assert.equal(mine[0].requests, 1, `one request for ${id}`);
}

describe("manual capture", { timeout: 5 * 60_000 }, () => {
  let sim;
  let browser;
  let page;

  before(async () => {
    sim = await startSim({ readers: 2 });
    browser = await launchBrowser();
    page = browser.page;
    await openPos(page, sim);
    await connectReader(page, READER);
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  test("an online payment is captured once; cancel after capture is refused", () =>
    withDiagnostics("capture-online", { browser, sim }, async () => {
      const paid = await payManual(page, 2_100);
      assert.equal(paid.status, "requires_capture");
      const first = await call(page, "capturePayment", paid.id);
      assert.deepEqual(first.ok, { id: paid.id, status: "succeeded", paymentIntentId: paid.paymentIntentId });
      const again = await call(page, "capturePayment", paid.id);
      assert.deepEqual(again.ok, first.ok, "a second capture answers the same");
      const cancel = await call(page, "cancelPayment", paid.id);
      assert.equal(cancel.code, "payment_unexpected_state");
      assert.equal(cancel.name, "PosTerminalError");
      await chargedOnce(sim, paid.id);
    }));

  test("a payment stored offline is captured once after it was forwarded", () =>
    withDiagnostics("capture-forwarded", { browser, sim }, async () => {
      const stored = await payManual(page, 2_200, "force_offline");
      assert.equal(stored.status, "stored_offline");
      assert.equal((await call(page, "capturePayment", stored.id)).code, "payment_not_forwarded");
      assert.equal((await call(page, "cancelPayment", stored.id)).code, "payment_not_forwarded");

      const report = await page.evaluate(() => window.posDemo.terminal.forwardStoredPayments());
      assert.ok(report.forwarded >= 1, JSON.stringify(report));
      const listed = async () =>
        (await page.evaluate(() => window.posDemo.terminal.listStoredPayments())).find((p) => p.id === stored.id);
      const forwarded = await listed();
      assert.equal(forwarded.state, "forwarded");
      assert.equal(forwarded.paymentStatus, "requires_capture");

      const first = await call(page, "capturePayment", stored.id);
      assert.equal(first.ok?.status, "succeeded", JSON.stringify(first));
      assert.equal(first.ok.paymentIntentId, forwarded.paymentIntentId);
      assert.deepEqual((await call(page, "capturePayment", stored.id)).ok, first.ok);
      assert.equal((await listed()).paymentStatus, "succeeded");
      assert.equal((await call(page, "cancelPayment", stored.id)).code, "payment_unexpected_state");
      await chargedOnce(sim, stored.id);
    }));

  test("an unknown id, a malformed id, and ws:// to another host have their own codes", () =>
    withDiagnostics("capture-codes", { browser, sim }, async () => {
      assert.equal((await call(page, "capturePayment", "pay_nosuchpayment")).code, "payment_not_found");
      assert.equal((await call(page, "cancelPayment", "../v1/health")).code, "invalid_argument");
      const insecure = await page.evaluate(async () => {
        try {
          await window.posDemo.terminal.discoverReaders({ method: "websocket", urls: ["ws://192.0.2.10:8787/readers/x"] });
          return null;
        } catch (e) {
          return { code: e.code, message: e.message };
        }
      });
      assert.equal(insecure?.code, "insecure_reader_url");
      assert.match(insecure.message, /wss:\/\//);
    }));
});

// The reader as the second storing agent, as a cashier sees it on the demo page with
// offline storage "reader": the POS's backend link down and the reader's up, the payment
// goes through the reader; both down, it is stored on the reader (its count beside the
// SDK's); the reader reboots, the page reconnects by itself; the reader's link back, it
// forwards the payment once and the page hears of it (storedBy "reader"); a swiped card
// cannot be taken offline and is stored nowhere.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startSim,
  launchBrowser,
  withDiagnostics,
  openPos,
  connectReader,
  pay,
  eventually,
  pendingCount,
  setPosLink,
  simGet,
  simPost,
  dependentSteps,
} from "./helpers.mjs";

const READER = "rdr_sim_2"; // its default card (4242, chip + PIN) is approved

describe("the reader as a second storing agent", { timeout: 4 * 60_000 }, () => {
  let sim;
  let browser;
  let page;
  let storedOnReader = null;

  before(async () => {
    sim = await startSim({ readers: 2 });
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  const step = dependentSteps();
  const diag = (name, fn) => step(name, () => withDiagnostics(name, { browser, sim }, fn));
  const readerLink = (down) => simPost(sim, `/_sim/readers/${READER}/network`, { down });
  const readerCount = async () =>
    (await page.locator("#reader-store").isVisible()) ? Number((await page.locator("#reader-pending-count").innerText()).trim()) : null;
  const charged = async (id) => (await simGet(sim, "/_sim/payments")).filter((p) => p.key === id);

  diag("1. the page, with offline storage on the reader, connects to a reader that stores", async () => {
    await openPos(page, sim, "?offlineStorage=reader");
    assert.equal(await page.locator("#offline-storage").inputValue(), "reader");
    await connectReader(page, READER);
    await eventually(async () => (await readerCount()) === 0, "the reader's stored count is shown");
    assert.match(await page.locator("#reader-link").innerText(), /online/);
  });

  diag("2. the POS's backend link down, the reader's up: the payment goes through the reader", async () => {
    await setPosLink(sim, true);
    const r = await pay(page, "1500");
    assert.equal(r.status, "succeeded", `result: ${r.text}`);
    assert.match(r.text, /reader's own link/);
    const at = await charged(r.paymentId);
    assert.equal(at.length, 1);
    assert.equal(at[0].requests, 1, "charged once");
    assert.equal(await pendingCount(page), 0, "nothing stored on the device");
  });

  diag("3. both links down: stored on the reader, its count beside the SDK's", async () => {
    await readerLink(true);
    const r = await pay(page, "2100");
    assert.equal(r.status, "stored_on_reader", `result: ${r.text}`);
    await eventually(async () => (await readerCount()) === 1, "1 payment on the reader");
    assert.match(await page.locator("#reader-link").innerText(), /offline/);
    assert.equal(await pendingCount(page), 0, "not stored on the device too");
    assert.equal((await simGet(sim, `/_sim/readers/${READER}`)).stored.count, 1);
    storedOnReader = r.paymentId;
  });

  diag("4. the reader reboots: the page reconnects by itself, the payment is still there", async () => {
    await simPost(sim, `/_sim/readers/${READER}/reboot`);
    await page.locator('#reader-status:not([data-status="connected"])').waitFor();
    await page.locator('#reader-status[data-status="connected"]').waitFor({ timeout: 20_000 });
    await eventually(async () => (await readerCount()) === 1, "the reader still holds it");
  });

  diag("5. the reader's link back: it forwards the payment once, the page hears of it", async () => {
    const id = storedOnReader;
    await readerLink(false);
    await eventually(async () => (await readerCount()) === 0, "the reader's count back to 0");
    const heard = await eventually(async () => {
      const seen = await page.evaluate(
        (id) => window.posDemo.events.filter((e) => e.type === "onPaymentForwarded" && e.payload?.id === id),
        id,
      );
      return seen.length > 0 ? seen : null;
    }, "onPaymentForwarded for the reader's payment");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const again = await page.evaluate(
      (id) => window.posDemo.events.filter((e) => e.type === "onPaymentForwarded" && e.payload?.id === id).length,
      id,
    );
    assert.equal(again, 1, "reported once");
    assert.equal(heard[0].payload.storedBy, "reader");
    const at = await charged(id);
    assert.equal(at.length, 1);
    assert.equal(at[0].requests, 1, "forwarded once");
    assert.equal(at[0].outcome, "succeeded");
  });

  diag("6. a swiped card is not taken offline, and is stored nowhere", async () => {
    await readerLink(true);
    await simPost(sim, `/_sim/readers/${READER}/card`, { number: "4242424242424242", entry: "swipe" });
    const r = await pay(page, "900");
    assert.equal(r.status, "error");
    assert.equal(r.code, "offline_payment_method_unsupported", `result: ${r.text}`);
    assert.equal(await pendingCount(page), 0);
    assert.equal((await simGet(sim, `/_sim/readers/${READER}`)).stored.count, 0);
    assert.equal(await readerCount(), 0);
    await readerLink(false);
    await setPosLink(sim, false);
  });
});

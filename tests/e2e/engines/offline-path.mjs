// The offline path of tests/e2e/offline-path.test.mjs on Firefox or WebKit (E2E_ENGINE),
// driven over WebDriver: pay online, lose the backend, store payments on the device, reload,
// get the backend back, check each key was charged once, then an offline payment the backend
// declines. Neither engine has Background Sync, so the page does all the forwarding.
//
// Run: E2E_ENGINE=firefox node --test tests/e2e/engines/offline-path.mjs
//      (WebKit under `xvfb-run -a`; `cargo xtask test --browser <engine>` sets it all up)

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, setNetwork, presentCard, simGet, eventually, dependentSteps } from "../helpers.mjs";
import { launchEngine } from "./webdriver.mjs";

const READER = "rdr_sim_1";
const ENGINE = process.env.E2E_ENGINE;

describe(`offline path on ${ENGINE}`, { timeout: 5 * 60_000 }, () => {
  let sim;
  let page;

  before(async () => {
    sim = await startSim({ readers: 2 });
    page = await launchEngine(ENGINE);
  });

  after(async () => {
    await page?.close();
    await sim?.stop();
  });

  const step = dependentSteps(async (name) => {
    const events = await page
      .evaluate(() => (window.posDemo?.events ?? []).slice(-25).map((e) => `${e.type} ${JSON.stringify(e.payload)}`))
      .catch((e) => [`(no page events: ${e.message})`]);
    console.error(
      [
        `\n===== diagnostics for "${name}" on ${ENGINE} =====`,
        "--- last posDemo events:",
        ...events,
        `--- #last-result: ${await page.text("#last-result").catch(() => "?")}`,
        "--- driver log (tail):",
        page.driverLog().slice(-3000),
        "--- pos-sim stderr (tail):",
        sim.stderrTail(3000),
      ].join("\n"),
    );
  });

  const storedRows = () =>
    page.evaluate(() =>
      [...document.querySelectorAll("#stored-payments tbody tr[data-id]")].map((tr) => ({
        id: tr.dataset.id,
        state: tr.dataset.state,
        intent: tr.dataset.paymentIntent || null,
        text: tr.innerText.replace(/\s+/g, " ").trim(),
      })),
    );
  const pendingCount = async () => Number((await page.text("#pending-count")).trim());
  const banner = () => page.attr("#network-banner", "data-status");

  async function waitReady() {
    await page.waitForFunction(() => !!window.posDemo, undefined, "window.posDemo exists");
    const ready = await page.evaluate(() =>
      window.posDemo.ready.then(
        () => ({ ok: true }),
        (err) => ({ ok: false, error: `${err?.code ?? ""} ${err?.message ?? err}` }),
      ),
    );
    assert.ok(ready.ok, `posDemo.ready rejected: ${ready.error}`);
  }

  async function connectReader(readerId) {
    if ((await page.attr("#reader-status", "data-status")) === "connected") return;
    await page.select("#reader-select", readerId);
    await page.click("#connect-btn");
    await page.waitFor('#reader-status[data-status="connected"]');
  }

  /** Keypad amount, offline behaviour, Charge; returns the next result shown. */
  async function pay(digits) {
    await page.select("#currency", "usd");
    await page.select("#offline-behavior", "prefer_online");
    await page.click('#keypad button[data-key="clear"]');
    for (const d of digits) await page.click(`#keypad button[data-key="${d}"]`);
    assert.equal(await page.attr("#amount", "data-amount"), String(Number(digits)));
    const seq = Number(await page.attr("#last-result", "data-seq"));
    await page.waitFor("#pay-btn:not([disabled])");
    await page.click("#pay-btn");
    await page.waitForFunction((s) => Number(document.querySelector("#last-result")?.dataset.seq) > s, seq, "a new result");
    await page.waitFor("#pay-btn:not([disabled])");
    return page.evaluate(() => {
      const r = document.querySelector("#last-result");
      return { status: r.dataset.status, code: r.dataset.code || null, paymentId: r.dataset.paymentId || null, text: r.innerText.replace(/\s+/g, " ").trim() };
    });
  }

  async function forwardNow() {
    await page.waitFor("#forward-btn:not([disabled])");
    await page.click("#forward-btn");
  }

  step("1. the page loads and connects to reader 1", async (t) => {
    t.diagnostic(`${ENGINE} over ${page.browser.isBidi ? "WebDriver BiDi" : "classic WebDriver"}`);
    await page.goto(sim.url);
    await waitReady();
    assert.equal((await storedRows()).length, 0, "a fresh profile has no stored payments");
    await connectReader(READER);
  });

  step("2. an online payment of $10.00 succeeds", async () => {
    const r = await pay("1000");
    assert.equal(r.status, "succeeded", `result: ${r.text}`);
    assert.match(r.text, /\$10\.00/);
    assert.equal((await storedRows()).length, 0, "an online payment is not stored");
  });

  step("3. three payments while the backend is down are stored on the device", async () => {
    await setNetwork(sim, true);
    const ids = [];
    for (const digits of ["1100", "1200", "1300"]) {
      const r = await pay(digits);
      assert.equal(r.status, "stored_offline", `payment of ${digits}: ${r.text}`);
      ids.push(r.paymentId);
    }
    await eventually(async () => (await banner()) === "offline", "the banner shows offline");
    await eventually(async () => {
      const rows = await storedRows();
      return rows.length === 3 && rows.every((r) => r.state === "pending");
    }, "the table shows 3 pending rows");
    assert.deepEqual(new Set((await storedRows()).map((r) => r.id)), new Set(ids));
    assert.equal(await pendingCount(), 3);
  });

  step("4. the stored payments survive a page reload", async () => {
    await page.reload();
    await waitReady();
    assert.equal((await storedRows()).length, 3);
    await eventually(async () => (await storedRows()).every((r) => r.state === "pending"), "the 3 rows are pending");
  });

  step("5. back online, the page forwards them", async () => {
    await setNetwork(sim, false);
    await forwardNow();
    await eventually(async () => {
      const rows = await storedRows();
      return rows.length === 3 && rows.every((r) => r.state === "forwarded" && r.intent);
    }, "all 3 rows end forwarded with a payment intent");
    assert.equal(await pendingCount(), 0);
    await eventually(async () => (await banner()) === "online", "the banner shows online again");
    const forwarded = await page.evaluate(() => window.posDemo.events.filter((e) => e.type === "onPaymentForwarded").length);
    assert.equal(forwarded, 3, "onPaymentForwarded fired once per stored payment");
  });

  step("6. the backend charged each payment exactly once", async () => {
    const payments = await simGet(sim, "/_sim/payments");
    assert.deepEqual(payments.map((p) => p.amount).sort((a, b) => a - b), [1000, 1100, 1200, 1300]);
    for (const p of payments) {
      assert.equal(p.requests, 1, `payment ${p.key} received ${p.requests} requests`);
      assert.equal(p.offline, p.amount !== 1000, `offline flag of ${p.amount}`);
    }
  });

  step("7. an offline payment the backend declines ends declined and is reported", async () => {
    await connectReader(READER); // the reload dropped the reader connection
    await presentCard(sim, READER, "4000000000000002");
    await setNetwork(sim, true);
    const r = await pay("2000");
    assert.equal(r.status, "stored_offline", `result: ${r.text}`);
    await page.waitFor(`#stored-payments tr[data-id="${r.paymentId}"][data-state="pending"]`);

    await setNetwork(sim, false);
    await forwardNow();
    await page.waitFor(`#stored-payments tr[data-id="${r.paymentId}"][data-state="declined"]`);
    const failure = await eventually(
      () => page.evaluate(() => window.posDemo.events.find((e) => e.type === "onForwardingFailure")?.payload ?? null),
      "onForwardingFailure fired",
    );
    assert.equal(failure.code, "card_declined", JSON.stringify(failure));
    assert.equal(failure.declineCode, "generic_decline", JSON.stringify(failure));
    assert.equal(failure.payment?.id, r.paymentId);
    assert.equal(await pendingCount(), 0);

    const payments = await simGet(sim, "/_sim/payments");
    assert.equal(payments.length, 5);
    for (const p of payments) assert.equal(p.requests, 1, `payment ${p.amount} received ${p.requests} requests`);
    assert.equal(payments.find((p) => p.amount === 2000)?.decline_code, "generic_decline");
  });

  step("8. what the engine lacks is detected, as the README's support matrix says", async (t) => {
    const has = await page.evaluate(() => ({
      backgroundSync: "SyncManager" in self,
      webUsb: "usb" in navigator,
      webLocks: !!navigator.locks,
      subtleCrypto: !!globalThis.crypto?.subtle,
      durabilityOption: "durability" in IDBTransaction.prototype,
    }));
    t.diagnostic(`${ENGINE} has ${JSON.stringify(has)}`);
    assert.deepEqual(has, { backgroundSync: false, webUsb: false, webLocks: true, subtleCrypto: true, durabilityOption: true });

    // No WebUSB: USB discovery rejects with a stable code.
    const usb = await page.evaluate(() =>
      window.posDemo.terminal.discoverReaders({ method: "usb" }).then(
        () => "resolved",
        (err) => err.code,
      ),
    );
    assert.equal(usb, "usb_unavailable");

    // What the store is granted is reported, whatever the engine answers about persistence.
    const status = await page.evaluate(() => window.posDemo.terminal.offlineStatus());
    const storage = await page.evaluate(async () => ({
      persist: typeof navigator.storage?.persist,
      persisted: await navigator.storage?.persisted?.(),
    }));
    t.diagnostic(`${ENGINE} offlineStatus: ${JSON.stringify(status)}; navigator.storage: ${JSON.stringify(storage)}`);
    assert.equal(status.pendingCount, 0, JSON.stringify(status));
    assert.equal(status.strictDurability, true, JSON.stringify(status));
    assert.ok([true, false, null].includes(status.persisted), JSON.stringify(status));
  });
});

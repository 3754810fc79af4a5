// Readers in the demo page: a reader another tab holds is listed "in use", and the connect
// button offers to take it over (the other tab is told); the "simulate USB" switch gives a fake WebUSB reader
// (www/fake-usb.js, bridged to pos-sim) that the picker connects and pays with, and that
// comes back by itself after its reader dies; the in-page
// simulated reader takes a payment with no pos-sim reader.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, launchBrowser, withDiagnostics, openPos, connectReader, pay, simGet, simPost, eventually } from "./helpers.mjs";

const READER = "rdr_sim_1";

describe("reader picker: in use, USB, simulated", { timeout: 3 * 60_000 }, () => {
  let sim;
  let browser;
  let first;
  let second;

  before(async () => {
    sim = await startSim({ readers: 1 });
    browser = await launchBrowser();
    first = browser.page;
    await openPos(first, sim);
    await connectReader(first, READER);
    second = await browser.context.newPage();
    await openPos(second, sim);
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  test("a second tab sees the reader in use, and takes it over only when asked", async () => {
    await withDiagnostics("reader in use", { browser, sim }, async () => {
      const option = second.locator(`#reader-select option[value="${READER}"]`);
      await option.waitFor({ state: "attached" });
      assert.match(await option.innerText(), /in use/);
      await second.selectOption("#reader-select", READER);
      // The button says what a click does; nothing is taken before it.
      assert.equal((await second.locator("#connect-btn").innerText()).trim(), "Take over");
      assert.equal(await first.locator("#reader-status").getAttribute("data-status"), "connected");
      await second.click("#connect-btn");
      await second.locator('#reader-status[data-status="connected"]').waitFor();
      await first.locator('#reader-status[data-status="not_connected"]').waitFor();
      await eventually(
        async () => /reader_taken_over|another POS/i.test(await first.locator("#reader-detail").innerText()),
        "the first tab is told its reader was taken over",
      );
    });
  });

  test("simulate USB: the fake USB reader is picked, connected and takes a payment", async () => {
    await withDiagnostics("usb reader", { browser, sim }, async () => {
      // The fake USB reader is bridged to the same pos-sim reader: free it first (the second
      // tab took it over).
      await second.click("#connect-btn");
      await second.locator('#reader-status[data-status="not_connected"]').waitFor();
      await eventually(async () => (await simGet(sim, `/_sim/readers/${READER}`)).connected === false, "reader released");

      await second.check("#simulate-usb");
      await second.click("#usb-btn");
      const option = second.locator('#reader-select option[value="usb_DEMO-USB-1"]');
      await option.waitFor({ state: "attached" });
      assert.match(await option.innerText(), /\(usb\)/);
      await connectReader(second, "usb_DEMO-USB-1");
      const r = await pay(second, "1234");
      assert.equal(r.status, "succeeded", r.text);
      // Read through the USB bridge by the pos-sim reader, which sealed it for the backend.
      const charged = (await simGet(sim, "/_sim/payments")).filter((p) => p.amount === 1234);
      assert.equal(charged.length, 1, JSON.stringify(charged));

      // The reader behind the cable dies: the SDK reconnects by itself and the till goes on.
      await simPost(sim, `/_sim/readers/${READER}/disconnect`);
      await new Promise((r) => setTimeout(r, 300));
      await eventually(
        async () =>
          (await simGet(sim, `/_sim/readers/${READER}`)).connected === true &&
          (await second.locator("#reader-status").getAttribute("data-status")) === "connected",
        "automatic reconnection",
      );
      const again = await pay(second, "1235");
      assert.equal(again.status, "succeeded", again.text);
    });
  });

  test("the in-page simulated reader takes a payment with no pos-sim reader", async () => {
    await withDiagnostics("simulated reader", { browser, sim }, async () => {
      await first.click("#simulated-btn");
      await connectReader(first, "rdr_simulated");
      const r = await pay(first, "2500", { offlineBehavior: "force_offline" });
      assert.equal(r.status, "stored_offline", r.text);
    });
  });
});

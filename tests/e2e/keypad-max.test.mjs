// The keypad stops at the SDK's largest amount (99,999,999 minor units, `MAX_AMOUNT` in
// src/validate.rs), says why, and that largest amount is one the SDK accepts.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, launchBrowser, withDiagnostics, openPos, connectReader, enterAmount, pay, simGet } from "./helpers.mjs";

const READER = "rdr_sim_1";
const MAX = "99999999";

describe("keypad maximum", { timeout: 3 * 60_000 }, () => {
  let sim;
  let browser;
  let page;

  before(async () => {
    sim = await startSim({ readers: 1 });
    browser = await launchBrowser();
    page = browser.page;
    await openPos(page, sim);
    await connectReader(page, READER);
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  const amount = () => page.locator("#amount").getAttribute("data-amount");
  const hint = () => page.locator("#amount-hint");

  test("no key takes the amount past 99,999,999 minor units, and the page says why", async () => {
    await withDiagnostics("keypad max", { browser, sim }, async () => {
      await enterAmount(page, MAX);
      assert.equal(await page.locator("#amount").innerText(), "$999,999.99");
      assert.equal(await hint().isVisible(), false, "no hint below the maximum");

      for (const key of ["9", "0", "00"]) {
        await page.click(`#keypad button[data-key="${key}"]`);
        assert.equal(await amount(), MAX, `key ${key} is refused at the maximum`);
      }
      await page.keyboard.press("7");
      assert.equal(await amount(), MAX, "a typed digit is refused too");
      assert.equal(await hint().isVisible(), true, "the hint explains the refusal");
      assert.match(await hint().innerText(), /Maximum \$999,999\.99 per payment/);
      assert.match(await hint().innerText(), /99,999,999 minor units/);

      // Backspace makes room again and the hint goes away.
      await page.click('#keypad button[data-key="backspace"]');
      assert.equal(await amount(), "9999999");
      assert.equal(await hint().isVisible(), false);

      // "00" that would pass the maximum is refused whole, not half-typed.
      await enterAmount(page, "1000000");
      await page.click('#keypad button[data-key="00"]');
      assert.equal(await amount(), "1000000");
      assert.equal(await hint().isVisible(), true);
      await page.click('#keypad button[data-key="0"]');
      assert.equal(await amount(), "10000000", "one more digit still fits");
      assert.equal(await hint().isVisible(), false);
    });
  });

  test("the largest amount the keypad allows is one the SDK accepts", async () => {
    await withDiagnostics("keypad max payment", { browser, sim }, async () => {
      const r = await pay(page, MAX);
      assert.equal(r.status, "succeeded", r.text);
      assert.match(r.text, /\$999,999\.99/);
      const charged = (await simGet(sim, "/_sim/payments")).filter((p) => p.amount === Number(MAX));
      assert.equal(charged.length, 1, JSON.stringify(charged));
    });
  });
});

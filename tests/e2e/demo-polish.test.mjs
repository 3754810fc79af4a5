// The demo page's smaller promises: a configuration given in the URL is remembered for the
// next plain load; the page fits a phone; the result card follows a stored payment once it is
// forwarded; offline_limit_exceeded shows money and says when a retry cannot help; the reader
// detail comes back after the SDK reconnects by itself; the simulator panel's test card reaches
// the SDK's in-page simulated reader; the banner is true when only the POS's link is down and
// the reader's own link is up; a "Forwarding failed" does not outlive the payments it left;
// an unknown card reads "card unknown".
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
  setNetwork,
  setPosLink,
  simPost,
  dependentSteps,
} from "./helpers.mjs";

const READER = "rdr_sim_1";

describe("demo polish", { timeout: 5 * 60_000 }, () => {
  let sim;
  let browser;
  let page;
  const step = dependentSteps();
  const run = (name, fn) => step(name, () => withDiagnostics(name, { browser, sim }, fn));

  before(async () => {
    sim = await startSim({ readers: 2 });
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  run("a configuration from the URL is remembered for a plain load", async () => {
    // As if the page were served by something other than pos-sim: no /_sim/config.
    await page.route("**/_sim/config", (route) => route.fulfill({ status: 404, body: "not pos-sim" }));
    const readers = sim.readers.map((r) => r.url).join(",");
    await openPos(page, sim, `?backend=${encodeURIComponent(sim.api)}&readers=${encodeURIComponent(readers)}`);
    await openPos(page, sim); // no query, like the installed app's start_url
    assert.equal(await page.locator("#config-error").isHidden(), true, "no configuration error");
    const created = await page.evaluate(() => window.posDemo.events.find((e) => e.type === "Terminal.create")?.payload);
    assert.equal(created.backendUrl, sim.api.replace(/\/+$/, ""));
    assert.equal(created.savedConfig, true);
    assert.equal(created.readers, sim.readers.length);
    await page.unroute("**/_sim/config");
    await openPos(page, sim);
    await connectReader(page, READER);
  });

  run("offline_limit_exceeded under Force offline: money in the card, retry says it cannot help", async () => {
    const r = await pay(page, "60000", { offlineBehavior: "force_offline" });
    assert.equal(r.code, "offline_limit_exceeded", r.text);
    assert.match(r.text, /offline_limit_exceeded/);
    assert.match(r.text, /\$600\.00.*\$500\.00/, r.text);
    assert.equal(await page.locator("#retry-box").isVisible(), true);
    assert.equal(await page.locator("#retry-btn").isDisabled(), true, "retry would be refused again");
    assert.match(await page.locator("#retry-text").innerText(), /Force offline/);
    await page.click("#discard-btn");
    await page.locator("#retry-box").waitFor({ state: "hidden" });
  });

  run("the result card of a stored payment says when it was forwarded", async () => {
    const r = await pay(page, "2500", { offlineBehavior: "force_offline" });
    assert.equal(r.status, "stored_offline", r.text);
    await page.click("#forward-btn:not([disabled])");
    await eventually(
      async () => (await page.locator("#last-result").getAttribute("data-forwarded")) === "forwarded",
      "the card shows the payment forwarded",
    );
    assert.equal(await page.locator("#last-result").getAttribute("data-status"), "stored_offline");
    const card = await page.locator("#last-result").innerText();
    assert.match(card, /✓\s*Forwarded/);
    assert.equal(card.split("✓").length - 1, 1, `one check mark: ${card}`);
  });

  run("with only the POS's link down, the banner says payments go through the reader's link", async () => {
    try {
      await setPosLink(sim, true);
      const r = await pay(page, "2700");
      assert.equal(r.status, "succeeded", r.text);
      assert.match(r.text, /reader's own link/);
      await eventually(
        async () => /^Offline — payments go through the reader's own link$/.test((await page.locator("#network-text").innerText()).trim()),
        "the banner names the reader's link",
      );
    } finally {
      await setPosLink(sim, false);
    }
  });

  run("a \"Forwarding failed\" is replaced once the payments it left are sent", async () => {
    try {
      await setNetwork(sim, true);
      const r = await pay(page, "2800", { offlineBehavior: "force_offline" });
      assert.equal(r.status, "stored_offline", r.text);
      await page.click("#forward-btn:not([disabled])");
      await eventually(async () => (await page.locator("#forward-report").getAttribute("data-status")) === "error", "Forward now fails offline");
    } finally {
      await setNetwork(sim, false);
    }
    // The SDK's timer sends it (no click).
    await eventually(
      async () => !/Forwarding failed/.test(await page.locator("#forward-report").innerText()),
      "the failure is no longer shown",
      45_000,
    );
    assert.equal(await page.locator("#forward-report").getAttribute("data-status"), "done");
  });

  run("a card the SDK does not know reads \"card unknown\"", async () => {
    const texts = await page.evaluate(async () => {
      const { cardText } = await import("./format.js");
      return [
        cardText({ brand: "unknown", last4: "", expMonth: 0, expYear: 0 }),
        cardText({ brand: "visa", last4: "4242", expMonth: 12, expYear: 2031 }),
      ];
    });
    assert.deepEqual(texts, ["card unknown", "Visa ••••4242"]);
  });

  run("the page fits a 390 px phone with a stored payment listed", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await setNetwork(sim, true);
      const r = await pay(page, "2600");
      assert.equal(r.status, "stored_offline", r.text);
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        forward: document.querySelector("#forward-btn").getBoundingClientRect().right,
      }));
      assert.ok(widths.page <= 390, `page is ${widths.page} px wide`);
      assert.ok(widths.forward <= 390, `Forward now ends at ${widths.forward} px`);
      const pending = await page.evaluate(() => {
        const el = document.querySelector("#network-pending");
        return { text: el.textContent, before: getComputedStyle(el, "::before").content };
      });
      assert.ok(!pending.text.startsWith("·") && ["none", "normal"].includes(pending.before), JSON.stringify(pending));
    } finally {
      await setNetwork(sim, false);
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  run("the reader detail comes back after the SDK reconnects by itself", async () => {
    const detail = await page.locator("#reader-detail").innerText();
    assert.ok(detail.length > 0, "detail shown after connect");
    await simPost(sim, `/_sim/readers/${READER}/reboot`);
    await page.locator('#reader-status:not([data-status="connected"])').waitFor();
    await page.locator('#reader-status[data-status="connected"]').waitFor({ timeout: 30_000 });
    await eventually(async () => (await page.locator("#reader-detail").innerText()) === detail, "detail filled again");
  });

  run("the simulator panel's test card reaches the in-page simulated reader", async () => {
    await page.click("#connect-btn"); // disconnect
    await page.locator('#reader-status[data-status="not_connected"]').waitFor();
    await page.click("#simulated-btn:not([disabled])");
    await eventually(
      async () => (await page.locator("#reader-select").inputValue()) && (await page.locator("#reader-select option:checked").innerText()).includes("simulated"),
      "the in-page simulated reader is picked",
    );
    await page.click("#connect-btn");
    await page.locator('#reader-status[data-status="connected"]').waitFor();
    await page.selectOption("#sim-card", "4000000000000002");
    await page.click("#sim-card-btn");
    await eventually(async () => /in-page simulated reader presents/.test(await page.locator("#sim-status").innerText()), "the panel confirms the card");
    const r = await pay(page, "1800");
    assert.equal(r.code, "card_declined", r.text);
    await page.click("#connect-btn"); // disconnect
    await page.locator('#reader-status[data-status="not_connected"]').waitFor();
  });
});

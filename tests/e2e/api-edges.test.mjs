// The public API called as a plain-JS integrator might: ids that are not strings, NaN
// amounts, calls after close(), a double click on "charge", and a second tab forwarding this
// tab's payments. Each case
// was found by trying the SDK from outside; each must give a rejected promise with a stable
// code, or a status that catches up.
//
// Run: node --test --test-concurrency=1 tests/e2e/

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, launchBrowser, withDiagnostics, eventually, setPosLink } from "./helpers.mjs";

/** A page of the pos-sim origin (not the demo) with the SDK loaded and a terminal factory. */
async function sdkPage(context, sim) {
  const page = await context.newPage();
  await page.goto(`${sim.url}style.css`);
  await page.evaluate(async (api) => {
    const sdk = await import("/pkg/pos_terminal.js");
    await sdk.default();
    window.sdk = sdk;
    window.events = [];
    window.outcomes = [];
    window.create = (options) =>
      sdk.Terminal.create({
        backendUrl: api,
        fetchConnectionToken: async () =>
          (await (await fetch(`${api}/v1/connection_tokens`, { method: "POST" })).json()).secret,
        onOfflineStatusChange: (s) => window.events.push(s.pendingCount),
        onPaymentForwarded: (p) => window.outcomes.push({ amount: p.amount, kind: "forwarded", storedBy: p.storedBy }),
        onForwardingFailure: (f) =>
          window.outcomes.push({ amount: f.payment.amount, kind: "failure", code: f.code, declineCode: f.declineCode }),
        ...options,
      });
    /** How a call ended: its value, or the rejection's code and message; `threw` if it threw. */
    window.outcome = (call) => {
      let p;
      try {
        p = call();
      } catch (e) {
        return Promise.resolve({ threw: `${e?.name}: ${e?.message}` });
      }
      return p.then(
        (value) => ({ value }),
        (e) => ({ code: e?.code, message: e?.message, isError: e instanceof Error }),
      );
    };
    window.storeOffline = async (terminal, amount) => {
      const c = await terminal.collectPaymentMethod({ amount, currency: "usd", offlineBehavior: "force_offline" });
      return (await terminal.processPayment(c)).status;
    };
    window.connectSimulated = async (terminal) => {
      const [reader] = await terminal.discoverReaders({ method: "simulated" });
      await terminal.connectReader(reader);
    };
  }, sim.api);
  return page;
}

describe("the API from plain JS", { timeout: 3 * 60_000 }, () => {
  let sim;
  let browser;

  before(async () => {
    sim = await startSim({ readers: 1 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await sim?.stop();
  });

  test("an id that is not a string: a rejected promise with invalid_argument, no throw, no trap", async () => {
    await withDiagnostics("ids", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      const results = await page.evaluate(async () => {
        const t = await create({ databaseName: "api-edges-ids" });
        const out = {};
        for (const [name, call] of [
          ["capture 123", () => t.capturePayment(123)],
          ["cancel {}", () => t.cancelPayment({})],
          ["requeue null", () => t.requeuePayment(null)],
          ["capture undefined", () => t.capturePayment()],
        ]) {
          out[name] = await outcome(call);
        }
        // The terminal still works after them.
        out.after = await outcome(() => t.capturePayment("pay_not_there"));
        await t.close();
        return out;
      });
      for (const name of ["capture 123", "cancel {}", "requeue null", "capture undefined"]) {
        const r = results[name];
        assert.equal(r.threw, undefined, `${name} threw: ${r.threw}`);
        assert.equal(r.code, "invalid_argument", `${name}: ${JSON.stringify(r)}`);
        assert.ok(r.isError, name);
        assert.match(r.message, /payment id must be a string/, name);
      }
      assert.match(results["cancel {}"].message, /got object/);
      assert.match(results["requeue null"].message, /got null/);
      // A string id goes through to the backend, which does not know it.
      assert.notEqual(results.after.code, "invalid_argument", JSON.stringify(results.after));
      assert.equal(results.after.threw, undefined);
      await page.close();
    });
  });

  test("NaN and Infinity amounts are refused as invalid_amount", async () => {
    await withDiagnostics("nan", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      const results = await page.evaluate(async () => {
        const t = await create({ databaseName: "api-edges-nan" });
        await connectSimulated(t);
        const out = [];
        for (const amount of [NaN, Infinity, -Infinity, null]) {
          out.push(await outcome(() => t.collectPaymentMethod({ amount, currency: "usd" })));
        }
        await t.close();
        return out;
      });
      for (const r of results) {
        assert.equal(r.code, "invalid_amount", JSON.stringify(r));
        assert.match(r.message, /NaN, Infinity or null/);
      }
      await page.close();
    });
  });

  test("an array for a request, a lone surrogate, a Map, NaN or a typo in the options (the worker's too): invalid_argument that says so", async () => {
    await withDiagnostics("shapes", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      const out = await page.evaluate(async () => {
        const t = await create({ databaseName: "api-edges-shapes" });
        await connectSimulated(t);
        const array = await outcome(() => t.collectPaymentMethod([100, "usd"]));
        const surrogate = await outcome(() =>
          t.collectPaymentMethod({ amount: 100, currency: "usd", metadata: { note: "\ud800" } }),
        );
        const typoFilter = await outcome(() => t.listStoredPayments({ status: "pending" }));
        // Wrong types, in a JS caller's words (no "f64", no Rust type names), and by field.
        const words = {
          amountString: await outcome(() => t.collectPaymentMethod({ amount: "100", currency: "usd" })),
          metadataNumber: await outcome(() => t.collectPaymentMethod({ amount: 100, currency: "usd", metadata: { note: 1 } })),
          nullRequest: await outcome(() => t.collectPaymentMethod(null)),
          timeoutString: await outcome(() => create({ databaseName: "api-edges-shapes", requestTimeoutMs: "8000" })),
        };
        // Not the text "NaN": refused.
        const nanNote = await outcome(() => t.collectPaymentMethod({ amount: 100, currency: "usd", metadata: { note: NaN } }));
        await t.close();
        // Options that JSON would turn into "not given": refused, never an unlimited terminal.
        const options = {};
        for (const [name, extra] of [
          ["map limit", { offline: { enabled: true, transactionLimit: new Map([["usd", 100]]) } }],
          ["NaN count", { offline: { enabled: true, maxStoredPayments: NaN } }],
          ["NaN timeout", { requestTimeoutMs: NaN }],
          ["typo", { requestTimeoutMS: 100 }],
        ]) {
          options[name] = await outcome(() => create({ databaseName: "api-edges-shapes", ...extra }));
          if (options[name].value) await options[name].value.close();
        }
        // The worker's entry point: a database name as a bare string, or a misspelt key,
        // would forward the default database instead (and a sync would not be retried).
        const worker = {
          string: await outcome(() => sdk.forwardStoredPayments("api-edges-shapes")),
          typo: await outcome(() => sdk.forwardStoredPayments({ databasename: "api-edges-shapes" })),
        };
        return { array, surrogate, nanNote, typoFilter, options, worker, words };
      });
      assert.equal(out.words.amountString.code, "invalid_amount", JSON.stringify(out.words.amountString));
      assert.equal(out.words.metadataNumber.code, "invalid_metadata", JSON.stringify(out.words.metadataNumber));
      assert.equal(out.words.nullRequest.code, "invalid_argument", JSON.stringify(out.words.nullRequest));
      assert.match(out.words.nullRequest.message, /expected an object/);
      assert.equal(out.words.timeoutString.code, "invalid_argument", JSON.stringify(out.words.timeoutString));
      assert.match(out.words.timeoutString.message, /expected a number/);
      for (const [name, r] of Object.entries(out.words)) {
        assert.doesNotMatch(r.message, /\bf64\b|\bu64\b|\bu32\b|struct [A-Z]/, `${name}: ${r.message}`);
      }
      assert.equal(out.worker.string.code, "invalid_argument", JSON.stringify(out.worker.string));
      assert.equal(out.worker.typo.code, "invalid_argument", JSON.stringify(out.worker.typo));
      assert.match(out.worker.typo.message, /unknown field `databasename`/);
      assert.equal(out.array.code, "invalid_argument", JSON.stringify(out.array));
      assert.match(out.array.message, /not an array/);
      assert.equal(out.surrogate.code, "invalid_argument", JSON.stringify(out.surrogate));
      assert.match(out.surrogate.message, /lone UTF-16 surrogate/);
      for (const [name, r] of Object.entries(out.options)) {
        assert.equal(r.code, "invalid_argument", `${name}: ${JSON.stringify(r)}`);
      }
      assert.match(out.options["map limit"].message, /a Map \(a plain object is expected\)/);
      assert.match(out.options["NaN count"].message, /`maxStoredPayments` is NaN, not a finite number/);
      assert.equal(out.nanNote.code, "invalid_metadata", JSON.stringify(out.nanNote));
      assert.equal(out.typoFilter.code, "invalid_argument", JSON.stringify(out.typoFilter));
      assert.match(out.typoFilter.message, /unknown field `status`/);
      assert.match(out.nanNote.message, /`note` is NaN/);
      assert.match(out.options.typo.message, /unknown option `requestTimeoutMS`/);
      await page.close();
    });
  });

  test("after close(), offlineStatus, listStoredPayments, setSimulatorConfiguration and a pending collect give terminal_closed", async () => {
    await withDiagnostics("closed", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      const results = await page.evaluate(async () => {
        const t = await create({ databaseName: "api-edges-closed" });
        // A collect waiting for the card when close() is called.
        await connectSimulated(t);
        t.setSimulatorConfiguration({ tapDelayMs: 5_000 });
        const collecting = outcome(() => t.collectPaymentMethod({ amount: 100, currency: "usd" }));
        await new Promise((r) => setTimeout(r, 200));
        await t.close();
        return {
          collecting: await collecting,
          status: await outcome(() => t.offlineStatus()),
          list: await outcome(() => t.listStoredPayments()),
          forward: await outcome(() => t.forwardStoredPayments()),
          // Synchronous: it throws.
          simulator: (() => {
            try {
              t.setSimulatorConfiguration({ tapDelayMs: 10 });
              return { value: "set" };
            } catch (e) {
              return { code: e?.code, message: e?.message };
            }
          })(),
        };
      });
      for (const [name, r] of Object.entries(results)) {
        assert.equal(r.code, "terminal_closed", `${name}: ${JSON.stringify(r)}`);
      }
      await page.close();
    });
  });

  test("processPayment twice at once: the second says payment_in_progress, one charge", async () => {
    await withDiagnostics("double click", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      const out = await page.evaluate(async () => {
        const t = await create({ databaseName: "api-edges-double" });
        await connectSimulated(t);
        const c = await t.collectPaymentMethod({ amount: 4321, currency: "usd" });
        const [first, second] = await Promise.all([outcome(() => t.processPayment(c)), outcome(() => t.processPayment(c))]);
        const after = await outcome(() => t.processPayment(c));
        await t.close();
        return { first, second, after, id: c.id };
      });
      assert.equal(out.first.value?.status, "succeeded", JSON.stringify(out.first));
      assert.equal(out.second.code, "payment_in_progress", JSON.stringify(out.second));
      assert.ok(out.second.isError);
      assert.equal(out.after.code, "payment_not_collected", "processed: nothing left to process");
      const approved = await (await fetch(`${sim.url}_sim/payments`)).json();
      const ours = approved.filter((p) => p.amount === 4321);
      assert.equal(ours.length, 1, JSON.stringify(approved));
      assert.equal(ours[0].requests, 1, JSON.stringify(ours));
      await page.close();
    });
  });

  test("forwardStoredPayments while another run is going: each report counts every payment", async () => {
    await withDiagnostics("forward report", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      await page.evaluate(async () => {
        window.t = await create({ databaseName: "api-edges-report", forwardIntervalMs: 600_000 });
        while ((await t.offlineStatus()).forwarding) await new Promise((r) => setTimeout(r, 50));
        await connectSimulated(t);
        t.setSimulatorConfiguration({ tapDelayMs: 10 });
        for (const amount of [7000, 7005]) {
          const status = await storeOffline(t, amount);
          if (status !== "stored_offline") throw new Error(`stored: ${status}`);
        }
      });
      // Each payment answer takes 300 ms. Two calls at once (a button pressed while the
      // timer's run goes): one run sends both payments, the other finds nothing left, and
      // both calls report what the runs settled, not only their own run's part.
      await setPosLink(sim, false, 300);
      try {
        const out = await page.evaluate(async () => {
          const reports = await Promise.all([t.forwardStoredPayments(), t.forwardStoredPayments()]);
          const left = (await t.offlineStatus()).pendingCount;
          await t.close();
          return { reports, left };
        });
        // 7005 ends in 05: declined by pos-sim's test rules.
        for (const report of out.reports) {
          assert.deepEqual(report, { forwarded: 1, declined: 1, failed: 0, remaining: 0 }, JSON.stringify(out));
        }
        assert.equal(out.left, 0);
      } finally {
        await setPosLink(sim, false, 0);
      }
      await page.close();
    });
  });

  test("the pending count moves during a long drain, not only at its end", async () => {
    await withDiagnostics("drain progress", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      await page.evaluate(async () => {
        window.t = await create({ databaseName: "api-edges-progress", forwardIntervalMs: 600_000 });
        while ((await t.offlineStatus()).forwarding) await new Promise((r) => setTimeout(r, 50));
        await connectSimulated(t);
        t.setSimulatorConfiguration({ tapDelayMs: 1 });
        for (let i = 0; i < 40; i++) {
          const status = await storeOffline(t, 8000 + i * 100);
          if (status !== "stored_offline") throw new Error(`stored: ${status}`);
        }
      });
      // 100 ms per answer, 3 at a time: about 1.4 s of drain.
      await setPosLink(sim, false, 100);
      try {
        const seen = await page.evaluate(async () => {
          const from = window.events.length;
          const report = await t.forwardStoredPayments();
          const during = window.events.slice(from);
          await t.close();
          return { report, during };
        });
        assert.equal(seen.report.forwarded, 40, JSON.stringify(seen.report));
        assert.ok(
          seen.during.some((n) => n > 0 && n < 40),
          `onOfflineStatusChange during the drain: ${JSON.stringify(seen.during)}`,
        );
        assert.equal(seen.during.at(-1), 0);
      } finally {
        await setPosLink(sim, false, 0);
      }
      await page.close();
    });
  });

  test("close() while processPayment waits for the backend: the payment ends with its own answer and leaves no intent", async () => {
    await withDiagnostics("close mid-payment", { browser, sim }, async () => {
      const db = `api-edges-close-mid-${Date.now()}`;
      const page = await sdkPage(browser.context, sim);
      await page.evaluate(async (db) => {
        window.t = await create({ databaseName: db, requestTimeoutMs: 1000 });
        await connectSimulated(t);
        // The start-up run and token fetch over: what follows is the payments' own.
        while ((await t.offlineStatus()).forwarding || (await t.offlineStatus()).networkStatus === "unknown") {
          await new Promise((r) => setTimeout(r, 50));
        }
      }, db);
      let out;
      try {
        // Answers 600 ms late: within the timeout (approved), then 1.5 s late: past it
        // (an unknown outcome, stored offline under the same id). close() comes 200 ms in.
        out = {};
        for (const [name, latency] of [["answered", 600], ["timed out", 1500]]) {
          await setPosLink(sim, false, latency);
          out[name] = await page.evaluate(async ({ amount }) => {
            const c = await t.collectPaymentMethod({ amount, currency: "usd" });
            const paid = outcome(() => t.processPayment(c));
            await new Promise((r) => setTimeout(r, 200));
            await t.close();
            return { id: c.id, paid: await paid };
          }, { amount: latency === 600 ? 4610 : 4620 });
          if (name === "answered") {
            // A closed terminal takes no second payment: a new one on the same database.
            await page.evaluate(async (db) => {
              window.t = await create({ databaseName: db, requestTimeoutMs: 1000, forwardIntervalMs: 3_600_000 });
              await connectSimulated(t);
            }, db);
          }
        }
      } finally {
        await setPosLink(sim, false, 0);
      }
      assert.equal(out.answered.paid.value?.status, "succeeded", JSON.stringify(out.answered));
      assert.equal(out["timed out"].paid.value?.status, "stored_offline", JSON.stringify(out["timed out"]));
      // Neither payment's intent is left to be forwarded later: the approved one reported,
      // and charged, once; the stored one is pending under its own id.
      const left = await page.evaluate(async (db) => {
        const again = await create({ databaseName: db, forwardIntervalMs: 3_600_000 });
        const intents = (await again.listStoredPayments({ state: "intent" })).map((p) => p.id);
        const pending = (await again.listStoredPayments({ state: "pending" })).map((p) => p.id);
        await again.close();
        return { intents, pending };
      }, db);
      assert.deepEqual(left.intents, [], JSON.stringify(left));
      assert.deepEqual(left.pending, [out["timed out"].id], JSON.stringify(left));
      const approved = await (await fetch(`${sim.url}_sim/payments`)).json();
      const first = approved.filter((p) => p.key === out.answered.id);
      assert.equal(first.length, 1, JSON.stringify(approved));
      assert.equal(first[0].requests, 1, JSON.stringify(first));
      await page.close();
    });
  });

  test("close() during a forwarding run: nothing more is sent, and no payment is left claimed", async () => {
    await withDiagnostics("close mid-drain", { browser, sim }, async () => {
      const db = `api-edges-close-drain-${Date.now()}`;
      const page = await sdkPage(browser.context, sim);
      const N = 12;
      const ids = await page.evaluate(async ({ db, N }) => {
        window.t = await create({ databaseName: db, forwardIntervalMs: 3_600_000 });
        await connectSimulated(t);
        while ((await t.offlineStatus()).forwarding) await new Promise((r) => setTimeout(r, 50));
        const ids = [];
        for (let i = 0; i < N; i++) {
          const c = await t.collectPaymentMethod({ amount: 4700 + 100 * i, currency: "usd", offlineBehavior: "force_offline" });
          ids.push((await t.processPayment(c)).id);
        }
        return ids;
      }, { db, N });
      let run;
      try {
        // Each answer 400 ms late: at 3 in flight, 12 payments take 1.6 s; close() comes
        // once the first answers are in.
        await setPosLink(sim, false, 400);
        run = await page.evaluate(async () => {
          const forwarding = outcome(() => t.forwardStoredPayments());
          await new Promise((r) => setTimeout(r, 700));
          await t.close();
          return forwarding;
        });
      } finally {
        await setPosLink(sim, false, 0);
      }
      // The run ends with its report (what it sent, what it left), not a storage error.
      assert.ok(run.value, JSON.stringify(run));
      assert.ok(run.value.forwarded >= 1 && run.value.forwarded < N, JSON.stringify(run));
      assert.equal(run.value.forwarded + run.value.remaining, N, JSON.stringify(run));
      const sent = async () =>
        (await (await fetch(`${sim.url}_sim/payments`)).json()).filter((p) => ids.includes(p.key));
      // Nothing more goes out after the run's end.
      const atEnd = (await sent()).length;
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal((await sent()).length, atEnd);
      // No payment is left leased in `forwarding`: the answered ones are settled, the others
      // pending; a new terminal forwards the rest, each charged once.
      const after = await page.evaluate(async (db) => {
        const again = await create({ databaseName: db, forwardIntervalMs: 3_600_000 });
        const states = (await again.listStoredPayments()).map((p) => p.state);
        const report = await again.forwardStoredPayments();
        await again.close();
        return { states, report };
      }, db);
      assert.ok(!after.states.includes("forwarding"), JSON.stringify(after));
      assert.equal(after.states.filter((s) => s === "forwarded").length, run.value.forwarded, JSON.stringify(after));
      assert.equal(after.report.forwarded, N - run.value.forwarded, JSON.stringify(after));
      const charged = await sent();
      assert.equal(charged.length, N, JSON.stringify(charged));
      for (const p of charged) {
        assert.equal(p.outcome, "succeeded", JSON.stringify(p));
        assert.equal(p.requests, 1, JSON.stringify(p));
      }
      await page.close();
    });
  });

  test("an idle terminal notices the backend going away and coming back, within a timer tick", async () => {
    await withDiagnostics("idle network", { browser, sim }, async () => {
      const page = await sdkPage(browser.context, sim);
      await page.evaluate(async () => {
        window.network = [];
        window.t = await create({
          databaseName: "api-edges-idle",
          forwardIntervalMs: 500,
          onNetworkStatusChange: (s) => window.network.push(s),
        });
      });
      const last = () => page.evaluate(() => window.network.at(-1));
      await eventually(async () => (await last()) === "online", "online at start", 10_000);
      try {
        await setPosLink(sim, true);
        // No payment is tried: the timer's health check alone must see it.
        await eventually(async () => (await last()) === "offline", "offline while idle", 10_000);
      } finally {
        await setPosLink(sim, false);
      }
      await eventually(async () => (await last()) === "online", "online again", 10_000);
      await page.evaluate(() => t.close());
      await page.close();
    });
  });

  test("a tab's pending count and its payments' outcomes catch up when another tab forwards them", async () => {
    await withDiagnostics("two tabs", { browser, sim }, async () => {
      const db = `api-edges-tabs-${Date.now()}`;
      const tabA = await sdkPage(browser.context, sim);
      const tabB = await sdkPage(browser.context, sim);
      // Tab A stores two payments once its first run (at create) is over; tab B forwards
      // them at once (its own first run, or the call), before tab A's first tick (2 s)
      // could see them.
      await tabA.evaluate(async (db) => {
        window.t = await create({ databaseName: db, forwardIntervalMs: 2000 });
        while ((await t.offlineStatus()).forwarding) await new Promise((r) => setTimeout(r, 20));
        await connectSimulated(t);
        // 2505 ends in 05: declined by pos-sim's test rules.
        for (const amount of [1500, 2505]) {
          const status = await storeOffline(t, amount);
          if (status !== "stored_offline") throw new Error(`stored: ${status}`);
        }
      }, db);
      const left = await tabB.evaluate(async (db) => {
        window.t = await create({ databaseName: db, forwardIntervalMs: 600_000 });
        await t.forwardStoredPayments();
        return (await t.offlineStatus()).pendingCount;
      }, db);
      assert.equal(left, 0, "tab B forwarded both");
      const approved = await (await fetch(`${sim.url}_sim/payments`)).json();
      const ours = approved.filter((p) => p.amount === 1500 || p.amount === 2505);
      assert.equal(ours.length, 2, JSON.stringify(approved));
      assert.ok(ours.every((p) => p.requests === 1 && p.offline), JSON.stringify(ours));
      // Tab A hears it from its own status events, within a few of its ticks.
      await eventually(
        async () => (await tabA.evaluate(() => window.events.at(-1))) === 0,
        "tab A's last onOfflineStatusChange should say 0 pending after tab B forwarded",
        15_000,
      );
      // And of each payment's outcome, as if it had forwarded them itself (a decline is
      // what a cashier must not miss).
      const outcomes = await eventually(
        async () => {
          const o = await tabA.evaluate(() => window.outcomes);
          return o.length >= 2 && o;
        },
        "tab A hears both outcomes",
        15_000,
      );
      assert.deepEqual(
        outcomes.sort((a, b) => a.amount - b.amount),
        [
          { amount: 1500, kind: "forwarded", storedBy: "sdk" },
          { amount: 2505, kind: "failure", code: "card_declined", declineCode: "generic_decline" },
        ],
      );
      assert.equal(await tabA.evaluate(async () => (await t.offlineStatus()).pendingCount), 0);
      await tabA.evaluate(() => t.close());
      await tabB.evaluate(() => t.close());
      await tabA.close();
      await tabB.close();
    });
  });

  test("forwardStoredPayments() waiting for another context's run: the count follows that run, and the call ends knowing every outcome", async () => {
    await withDiagnostics("lock wait", { browser, sim }, async () => {
      const db = `api-edges-lock-wait-${Date.now()}`;
      const N = 12;
      const tab = await sdkPage(browser.context, sim);
      const other = await sdkPage(browser.context, sim);
      await tab.evaluate(async ({ db, N }) => {
        window.t = await create({ databaseName: db, forwardIntervalMs: 3_600_000 });
        while ((await t.offlineStatus()).forwarding) await new Promise((r) => setTimeout(r, 20));
        await connectSimulated(t);
        for (let i = 0; i < N; i++) {
          const status = await storeOffline(t, 3000 + 100 * i);
          if (status !== "stored_offline") throw new Error(`stored: ${status}`);
        }
        window.events.length = 0;
      }, { db, N });
      let seen;
      try {
        // Each answer 400 ms late: the other context's run (the worker entry point, as a
        // service worker's, which takes the lock at once) sends 3 at a time for ~1.6 s; this
        // tab's call waits for the lock behind it.
        await setPosLink(sim, false, 400);
        seen = await tab.evaluate(async (db) => {
          const elsewhere = sdk.forwardStoredPayments({ databaseName: db });
          await new Promise((r) => setTimeout(r, 100));
          const report = await t.forwardStoredPayments();
          return {
            report,
            counts: [...window.events],
            outcomes: window.outcomes.length,
            elsewhere: await elsewhere,
          };
        }, db);
      } finally {
        await setPosLink(sim, false, 0);
      }
      assert.equal(seen.elsewhere.forwarded, N, JSON.stringify(seen));
      assert.equal(seen.report.remaining, 0, JSON.stringify(seen));
      // The count fell in steps while the call waited, not from N to 0 at its end.
      assert.ok(seen.counts.some((c) => c > 0 && c < N), JSON.stringify(seen));
      assert.equal(seen.counts.at(-1), 0, JSON.stringify(seen));
      // Each payment's outcome was told before the call resolved.
      assert.equal(seen.outcomes, N, JSON.stringify(seen));
      await tab.evaluate(() => t.close());
      await tab.close();
      await other.close();
    });
  });
});

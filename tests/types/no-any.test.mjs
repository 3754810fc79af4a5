// Tests of the `.d.ts` gate itself (`cargo xtask test --only types` runs them before the gate).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { anyTypeLines } from "./no-any.mjs";

const fixture = (name) => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));
const gate = fileURLToPath(new URL("no-any.mjs", import.meta.url));
const lines = (text) => anyTypeLines(text).map((h) => h.line);

test("flags any in every type position", () => {
  assert.deepEqual(lines(readFileSync(fixture("leaky.d.ts"), "utf8")), [2, 3, 4, 5, 6, 7, 8, 9]);
});

test("ignores comments, strings, names, lookalikes and the raw wasm exports", () => {
  assert.deepEqual(lines(readFileSync(fixture("clean.d.ts"), "utf8")), []);
});

test("still checks what follows InitOutput", () => {
  const dts = `export interface InitOutput {
    readonly terminal_create: (a: any) => any;
}
export function f(x: any): void;
`;
  assert.deepEqual(anyTypeLines(dts), [{ line: 4, text: "export function f(x: any): void;" }]);
});

test("reports the original text with line numbers", () => {
  assert.deepEqual(anyTypeLines("/* any\n*/\nexport type X = {\n  y: any;\n};\n"), [
    { line: 4, text: "  y: any;" },
  ]);
});

test("the command fails on a declaration file that uses any, and passes a clean one", () => {
  const leaky = spawnSync(process.execPath, [gate, fixture("leaky.d.ts")], { encoding: "utf8" });
  assert.equal(leaky.status, 1, leaky.stderr);
  assert.match(leaky.stderr, /leaky\.d\.ts:8: export function g\(cb: \(e: Error\) => void, o: Record<string, any>\): void;/);
  assert.match(leaky.stderr, /8 line\(s\) use `any`/);
  const clean = spawnSync(process.execPath, [gate, fixture("clean.d.ts")], { encoding: "utf8" });
  assert.equal(clean.status, 0, clean.stderr);
});

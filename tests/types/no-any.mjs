// The `.d.ts` gate: the package's public surface must not use `any` as a type.
// `node tests/types/no-any.mjs FILE.d.ts…` prints each offending line and exits 1.
//
// It walks the TypeScript compiler's own syntax tree, so comments, string literals and names
// spelled `any` are not types by construction. `interface InitOutput` is skipped: it lists the
// raw wasm exports, where wasm-bindgen always writes externrefs as `any`.
import { readFileSync } from "node:fs";
import { argv, exit } from "node:process";
import { fileURLToPath } from "node:url";
import ts from "typescript";

/** Lines (1-based, with their text) of `text` where `any` is used as a type. */
export function anyTypeLines(text, fileName = "input.d.ts") {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines = text.split(/\r?\n/);
  const found = new Set();
  const visit = (node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === "InitOutput") return;
    if (node.kind === ts.SyntaxKind.AnyKeyword) {
      found.add(source.getLineAndCharacterOfPosition(node.getStart(source)).line);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return [...found].sort((a, b) => a - b).map((line) => ({ line: line + 1, text: lines[line] }));
}

if (argv[1] === fileURLToPath(import.meta.url)) {
  const files = argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node tests/types/no-any.mjs FILE.d.ts…");
    exit(2);
  }
  let total = 0;
  for (const file of files) {
    const hits = anyTypeLines(readFileSync(file, "utf8"), file);
    for (const { line, text } of hits) console.error(`    ${file}:${line}: ${text.trim()}`);
    total += hits.length;
  }
  if (total > 0) {
    console.error(
      `${total} line(s) use \`any\`: give them precise types ` +
        '(#[wasm_bindgen(typescript_type = "…")] or unchecked_param_type/unchecked_return_type)',
    );
    exit(1);
  }
  console.log(`    no \`any\` in ${files.join(", ")}`);
}

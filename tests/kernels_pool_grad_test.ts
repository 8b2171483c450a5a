// MaxPoolGrad from lib/kernels against the stock cpu kernel: non-overlapping, overlapping (3×3/2 same, the
// ResNet root pool), explicit padding, windows smaller than the stride, odd sizes, and inputs with ties (the
// first maximum in row-major window order must get the gradient, as on cpu).
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { registerTrainingKernels, restoreStockKernels } from "../lib/kernels/mod.ts";
import { arg, gradsOn, relDiff } from "../lib/kernels/_testing.ts";

interface Case {
  x: number[];
  k: number | [number, number];
  s: number | [number, number];
  pad: "same" | "valid" | number;
  levels?: number;
}
const cases: Case[] = [
  { x: [2, 8, 8, 3], k: 2, s: 2, pad: "valid" },
  { x: [1, 32, 32, 1], k: 2, s: 2, pad: "valid" },
  { x: [2, 9, 7, 4], k: 2, s: 2, pad: "same" },
  { x: [2, 16, 16, 5], k: 3, s: 2, pad: "same" },
  { x: [3, 15, 13, 2], k: 3, s: 2, pad: "same" },
  { x: [2, 11, 11, 3], k: 3, s: 2, pad: 1 },
  { x: [2, 10, 10, 3], k: 3, s: 2, pad: "valid" },
  { x: [2, 9, 9, 2], k: 3, s: 1, pad: "same" },
  { x: [2, 9, 10, 2], k: 3, s: 3, pad: "valid" },
  { x: [1, 9, 9, 2], k: 1, s: 2, pad: "valid" },
  { x: [1, 10, 10, 2], k: 2, s: 3, pad: "same" },
  { x: [2, 12, 12, 2], k: [3, 2], s: [2, 1], pad: "same" },
  { x: [2, 13, 13, 3], k: 5, s: 2, pad: "same" },
  // ties: values on a coarse grid, many windows with several equal maxima
  { x: [2, 12, 12, 3], k: 3, s: 2, pad: "same", levels: 2 },
  { x: [2, 8, 8, 3], k: 2, s: 2, pad: "valid", levels: 1 },
  { x: [1, 9, 9, 2], k: 3, s: 1, pad: "same", levels: 1 },
];

Deno.test(`max-pool gradients on wasm match stock cpu (${cases.length} cases, with ties)`, async () => {
  restoreStockKernels("cpu");
  registerTrainingKernels("wasm");
  for (const [n, c] of cases.entries()) {
    const f = (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, c.k, c.s, c.pad);
    const args = [arg(c.x, n + 1, c.levels ?? 0)];
    const ref = await gradsOn("cpu", f, args), got = await gradsOn("wasm", f, args);
    const where = `x=${c.x} k=${c.k} s=${c.s} pad=${c.pad} levels=${c.levels ?? 0}`;
    assert.ok(relDiff(got[0], ref[0]) === 0, `${where}: forward differs`);
    const d = relDiff(got[1], ref[1]);
    assert.ok(d < 1e-6, `${where}: gradient rel diff ${d}`);
  }
});

Deno.test("the stock wasm MaxPoolGrad is what we replace (documented bug still present)", async () => {
  // If a future tfjs fixes it this test tells us the replacement may be dropped; today it must differ.
  restoreStockKernels("wasm");
  const f = (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid");
  const args = [arg([1, 32, 32, 1], 3)];
  const ref = await gradsOn("cpu", f, args), stock = await gradsOn("wasm", f, args);
  registerTrainingKernels("wasm");
  const ours = await gradsOn("wasm", f, args);
  assert.ok(relDiff(stock[1], ref[1]) > 1e-3, "stock wasm MaxPoolGrad now matches cpu");
  assert.ok(relDiff(ours[1], ref[1]) < 1e-6);
});

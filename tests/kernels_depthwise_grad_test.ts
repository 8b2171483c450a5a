// Depthwise conv gradients from lib/kernels (wasm has none in tfjs 4.22) against the stock cpu kernels:
// channel multipliers 1 and 2, strides 1/2, kernel sizes 1/3/5, same/valid, and a wider stride-2 case.
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { registerTrainingKernels, restoreStockKernels } from "../lib/kernels/mod.ts";
import { arg, gradsOn, relDiff } from "../lib/kernels/_testing.ts";

interface Case {
  x: number[];
  k: number[];
  s: number;
  pad: "same" | "valid";
  dil?: number;
}
const cases: Case[] = [];
let i = 0;
for (const kk of [1, 3, 5]) {
  for (const s of [1, 2]) {
    for (const pad of ["same", "valid"] as const) {
      const c = 1 + (i % 4), m = 1 + (i % 2);
      cases.push({ x: [1 + (i % 3), kk + 3 + (i % 3), kk + 2 + (i % 4), c], k: [kk, kk, c, m], s, pad });
      i++;
    }
  }
}
cases.push({ x: [2, 11, 10, 3], k: [5, 5, 3, 2], s: 2, pad: "same" }); // (tf has no gradient for dilated depthwise)
cases.push({ x: [2, 16, 16, 8], k: [3, 3, 8, 1], s: 2, pad: "same" });

Deno.test(`depthwise conv gradients on wasm match stock cpu (${cases.length} cases)`, async () => {
  restoreStockKernels("cpu");
  registerTrainingKernels("wasm");
  for (const [n, c] of cases.entries()) {
    const f = (x: tf.Tensor, w: tf.Tensor) =>
      tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.s, c.pad, "NHWC", c.dil ?? 1);
    const args = [arg(c.x, 3 * n + 1), arg(c.k, 3 * n + 2)];
    const ref = await gradsOn("cpu", f, args), got = await gradsOn("wasm", f, args);
    const where = `x=${c.x} k=${c.k} s=${c.s} pad=${c.pad} dil=${c.dil ?? 1}`;
    assert.ok(relDiff(got[0], ref[0]) < 1e-5, `${where}: forward differs`);
    assert.ok(relDiff(got[1], ref[1]) < 1e-4, `${where}: input gradient ${relDiff(got[1], ref[1])}`);
    assert.ok(relDiff(got[2], ref[2]) < 1e-4, `${where}: filter gradient ${relDiff(got[2], ref[2])}`);
  }
});

Deno.test("separable conv trains through the depthwise gradients on wasm", async () => {
  registerTrainingKernels("wasm");
  const f = (x: tf.Tensor, d: tf.Tensor, p: tf.Tensor) =>
    tf.separableConv2d(x as tf.Tensor4D, d as tf.Tensor4D, p as tf.Tensor4D, 2, "same");
  const args = [arg([2, 9, 9, 4], 5), arg([3, 3, 4, 2], 6), arg([1, 1, 8, 5], 7)];
  const ref = await gradsOn("cpu", f, args), got = await gradsOn("wasm", f, args);
  for (let g = 0; g < 4; g++) {
    assert.ok(relDiff(got[g], ref[g]) < 1e-4, `output ${g}: ${relDiff(got[g], ref[g])}`);
  }
});

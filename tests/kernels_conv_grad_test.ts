// Conv2D gradients from lib/kernels (as forward convolutions) against the stock cpu kernels, over kernel sizes
// 1/2/3/7, strides 1/2, same/valid/explicit padding, odd/even sizes and several batch sizes; on wasm (where
// the replacement is needed) and on cpu (where it is registered for speed).
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { registerTrainingKernels, restoreStockKernels } from "../lib/kernels/mod.ts";
import { arg, type ConvCase, convCaseGrid, gradsOn, relDiff } from "../lib/kernels/_testing.ts";

type Case = ConvCase;
const cases: Case[] = convCaseGrid(4, 6);
// non-square kernels / mixed strides / wider channels
cases.push({ x: [2, 9, 8, 5], k: [3, 1, 5, 3], stride: [2, 1], pad: "same" });
cases.push({ x: [2, 8, 11, 4], k: [1, 3, 4, 6], stride: [1, 2], pad: "valid" });
cases.push({ x: [3, 16, 16, 16], k: [3, 3, 16, 32], stride: 2, pad: "same" });
cases.push({ x: [4, 12, 12, 8], k: [3, 3, 8, 8], stride: 1, pad: "same" });

const conv = (c: Case) => (x: tf.Tensor, w: tf.Tensor) =>
  tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad as "same");

async function compare(backend: string, label: string) {
  for (const [n, c] of cases.entries()) {
    const args = [arg(c.x, 2 * n + 1), arg(c.k, 2 * n + 2)];
    const ref = await gradsOn("cpu", conv(c), args);
    const got = await gradsOn(backend, conv(c), args);
    const where = `${label} x=${c.x} k=${c.k} stride=${c.stride} pad=${JSON.stringify(c.pad)}`;
    assert.ok(relDiff(got[0], ref[0]) < 1e-5, `${where}: forward differs`);
    const dx = relDiff(got[1], ref[1]), dw = relDiff(got[2], ref[2]);
    assert.ok(dx < 1e-4, `${where}: input gradient rel diff ${dx}`);
    assert.ok(dw < 1e-4, `${where}: filter gradient rel diff ${dw}`);
  }
}

Deno.test(`conv2d gradients on wasm match stock cpu (${cases.length} cases)`, async () => {
  restoreStockKernels("cpu");
  registerTrainingKernels("wasm");
  await compare("wasm", "wasm");
});

Deno.test("conv2d gradients with our kernels on cpu match stock cpu", async () => {
  // the reference must be stock: compute it first, then swap kernels and compare
  restoreStockKernels("cpu");
  const refs = [];
  for (const [n, c] of cases.entries()) {
    refs.push(await gradsOn("cpu", conv(c), [arg(c.x, n), arg(c.k, n + 50)]));
  }
  registerTrainingKernels("cpu");
  try {
    for (const [n, c] of cases.entries()) {
      const got = await gradsOn("cpu", conv(c), [arg(c.x, n), arg(c.k, n + 50)]);
      for (let g = 1; g < 3; g++) {
        const d = relDiff(got[g], refs[n][g]);
        assert.ok(
          d < 1e-4,
          `cpu x=${c.x} k=${c.k} stride=${c.stride} pad=${JSON.stringify(c.pad)} grad ${g}: ${d}`,
        );
      }
    }
  } finally {
    restoreStockKernels("cpu");
  }
});

Deno.test("fused conv2d + bias + relu trains through the replacement kernels on wasm", async () => {
  registerTrainingKernels("wasm");
  const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
    tf.fused.conv2d({
      x: x as tf.Tensor4D,
      filter: w as tf.Tensor4D,
      strides: 2,
      pad: "same",
      bias: b,
      activation: "relu",
    });
  const args = [arg([2, 7, 7, 3], 11), arg([3, 3, 3, 5], 12), arg([5], 13)];
  const ref = await gradsOn("cpu", f, args), got = await gradsOn("wasm", f, args);
  for (let g = 0; g < 4; g++) {
    assert.ok(relDiff(got[g], ref[g]) < 1e-4, `output ${g}: ${relDiff(got[g], ref[g])}`);
  }
});

Deno.test("replacement kernels free their intermediates", async () => {
  registerTrainingKernels("wasm");
  await tf.setBackend("wasm");
  const x = tf.tensor(arg([2, 9, 9, 4], 1).data, [2, 9, 9, 4]) as tf.Tensor4D;
  const w = tf.tensor(arg([3, 3, 4, 4], 2).data, [3, 3, 4, 4]) as tf.Tensor4D;
  const run = () =>
    tf.dispose(
      tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same"))
      )([x, w]),
    );
  run();
  const before = tf.memory();
  for (let n = 0; n < 3; n++) run();
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numBytes, before.numBytes);
  // numDataBuffers counts backend allocations: a leak inside a kernel shows up here
  assert.equal(
    (after as unknown as { numDataBuffers: number }).numDataBuffers,
    (before as unknown as { numDataBuffers: number }).numDataBuffers,
  );
  tf.dispose([x, w]);
});

// The native conv kernels (lib/kernels/native) against the stock cpu kernels: forward, input and filter
// gradients over kernel sizes 1/2/3/7, strides 1/2, same/valid/explicit padding, dilation, odd/even sizes,
// channel counts that are not multiples of the 6×16 register block; 1 and 3 threads give identical bits.
// Where the machine has no C compiler the library cannot be built: the tests say so and are ignored.
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { registerNativeKernels, registerTrainingKernels, restoreStockKernels } from "../lib/kernels/mod.ts";
import { loadNative } from "../lib/kernels/native/build.ts";
import { arg, type ConvCase, convCaseGrid, gradsOn, relDiff } from "../lib/kernels/_testing.ts";
import { groupNormRelu } from "../lib/model/norm.ts";

const native = await loadNative();
if (!native.ok) console.error(`native kernels unavailable here (${native.reason}); their tests are ignored`);

type Case = ConvCase;
const cases: Case[] = convCaseGrid(7, 19); // channel counts off the 6×16 register block
cases.push({ x: [2, 9, 8, 5], k: [3, 1, 5, 3], stride: [2, 1], pad: "same" });
cases.push({ x: [2, 8, 11, 4], k: [1, 3, 4, 6], stride: [1, 2], pad: "valid" });
cases.push({ x: [3, 16, 16, 16], k: [3, 3, 16, 32], stride: 2, pad: "same" });
cases.push({ x: [5, 12, 12, 12], k: [3, 3, 12, 44], stride: 1, pad: "same" });
cases.push({ x: [2, 11, 13, 33], k: [3, 3, 33, 17], stride: 2, pad: "same" });
cases.push({ x: [1, 7, 7, 3], k: [7, 7, 3, 20], stride: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] });

const conv = (c: Case) => (x: tf.Tensor, w: tf.Tensor) =>
  tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad as "same", "NHWC", c.dilation ?? 1);

const where = (c: Case) => `x=${c.x} k=${c.k} stride=${c.stride} pad=${JSON.stringify(c.pad)}`;

Deno.test({
  name: `native conv2d and its gradients on wasm match stock cpu (${cases.length} cases)`,
  ignore: !native.ok,
  async fn() {
    if (!native.ok) return;
    restoreStockKernels("cpu");
    registerTrainingKernels("wasm");
    registerNativeKernels(native.lib, 2);
    try {
      for (const [n, c] of cases.entries()) {
        const args = [arg(c.x, 2 * n + 1), arg(c.k, 2 * n + 2)];
        const ref = await gradsOn("cpu", conv(c), args);
        const got = await gradsOn("wasm", conv(c), args);
        assert.ok(
          relDiff(got[0], ref[0]) < 1e-5,
          `${where(c)}: forward differs by ${relDiff(got[0], ref[0])}`,
        );
        assert.ok(
          relDiff(got[1], ref[1]) < 1e-4,
          `${where(c)}: input gradient differs by ${relDiff(got[1], ref[1])}`,
        );
        assert.ok(
          relDiff(got[2], ref[2]) < 1e-4,
          `${where(c)}: filter gradient differs by ${relDiff(got[2], ref[2])}`,
        );
      }
    } finally {
      restoreStockKernels("wasm");
    }
  },
});

Deno.test({
  name: "native conv2d forward with dilation matches stock cpu",
  ignore: !native.ok,
  async fn() {
    if (!native.ok) return;
    registerTrainingKernels("wasm");
    registerNativeKernels(native.lib, 1);
    try {
      for (
        const c of [
          { x: [2, 12, 10, 5], k: [3, 3, 5, 7], stride: 1, pad: "same", dilation: 2 },
          { x: [1, 13, 13, 4], k: [2, 3, 4, 18], stride: 1, pad: "valid", dilation: 3 },
        ] as Case[]
      ) {
        const xs = arg(c.x, 7), ks = arg(c.k, 8);
        const f = (b: string) =>
          tf.setBackend(b).then(() =>
            tf.tidy(() => conv(c)(tf.tensor(xs.data, xs.shape), tf.tensor(ks.data, ks.shape)).dataSync())
          );
        const ref = await f("cpu") as Float32Array, got = await f("wasm") as Float32Array;
        assert.ok(relDiff(got, ref) < 1e-5, `${where(c)} dilation ${c.dilation}: ${relDiff(got, ref)}`);
      }
    } finally {
      restoreStockKernels("wasm");
    }
  },
});

Deno.test({
  name: "native kernels give the same bits on 1 and 3 threads (outputs are split, never a sum)",
  ignore: !native.ok,
  async fn() {
    if (!native.ok) return;
    const c: Case = { x: [4, 14, 14, 10], k: [3, 3, 10, 22], stride: 2, pad: "same" };
    const args = [arg(c.x, 3), arg(c.k, 4)];
    const run = async (threads: number) => {
      registerTrainingKernels("wasm");
      registerNativeKernels(native.lib, threads);
      try {
        return await gradsOn("wasm", conv(c), args);
      } finally {
        restoreStockKernels("wasm");
      }
    };
    const one = await run(1), three = await run(3);
    for (let g = 0; g < 3; g++) {
      assert.deepEqual(three[g], one[g], `output ${g} differs between 1 and 3 threads`);
    }
    // and it really is the native path: the stock XNNPACK forward agrees but sums in another order
    registerTrainingKernels("wasm");
    const xnn = await gradsOn("wasm", conv(c), args);
    restoreStockKernels("wasm");
    assert.ok(relDiff(xnn[0], one[0]) < 1e-5);
    assert.notDeepEqual(xnn[0], one[0]);
  },
});

Deno.test({
  name:
    "native GroupNorm+ReLU and its gradient match relu(groupNorm(…)) on wasm, and are thread-count invariant",
  ignore: !native.ok,
  async fn() {
    if (!native.ok) return;
    await tf.setBackend("wasm");
    const shapes: [number[], number][] = [[[2, 5, 7, 32], 32], [[3, 4, 4, 24], 8], [[1, 9, 3, 44], 11], [[
      4,
      2,
      2,
      6,
    ], 1]];
    for (const [shape, groups] of shapes) {
      const c = shape[3];
      const xs = arg(shape, 11), gs = arg([c], 12), bs = arg([c], 13);
      const f = (x: tf.Tensor, s: tf.Tensor, b: tf.Tensor) =>
        groupNormRelu(x as tf.Tensor4D, tf.add(s, 1.5), tf.mul(b, 0.3), groups);
      registerTrainingKernels("wasm");
      const ref = await gradsOn("wasm", f, [xs, gs, bs]); // composite: no fused kernel registered yet
      const got: Float32Array[][] = [];
      for (const threads of [1, 3]) {
        registerNativeKernels(native.lib, threads);
        got.push(await gradsOn("wasm", f, [xs, gs, bs]));
        restoreStockKernels("wasm");
        registerTrainingKernels("wasm");
      }
      restoreStockKernels("wasm");
      const names = ["value", "dx", "dscale", "dbias"];
      for (let k = 0; k < 4; k++) {
        const d = relDiff(got[0][k], ref[k]);
        assert.ok(d < 2e-5, `shape ${shape} groups ${groups}: ${names[k]} differs by ${d}`);
        assert.deepEqual(got[1][k], got[0][k], `shape ${shape}: ${names[k]} differs between 1 and 3 threads`);
      }
    }
  },
});

// Tests for lib/model/norm.ts: the fast GroupNorm / weight standardisation against straightforward
// moments-based references (values and gradients), on the cpu and wasm backends.
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { groupNorm, standardizeKernel } from "../lib/model/norm.ts";

function refGroupNorm(x: tf.Tensor4D, scale: tf.Tensor, bias: tf.Tensor, groups: number, eps = 1e-5) {
  const [b, h, w, c] = x.shape;
  const x5 = tf.reshape(x, [b, h, w, groups, c / groups]);
  const { mean, variance } = tf.moments(x5, [1, 2, 4], true);
  const xn = tf.div(tf.sub(x5, mean), tf.sqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(tf.reshape(xn, [b, h, w, c]), scale), bias) as tf.Tensor4D;
}

function refStandardize(w: tf.Tensor, eps: number) {
  const axes = [...Array(w.rank - 1).keys()];
  const { mean, variance } = tf.moments(w, axes, true);
  return tf.div(tf.sub(w, mean), tf.sqrt(tf.add(variance, eps)));
}

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const da = a.dataSync(), db = b.dataSync();
  let scale = 1e-6, m = 0;
  for (let i = 0; i < da.length; i++) scale = Math.max(scale, Math.abs(db[i]));
  for (let i = 0; i < da.length; i++) m = Math.max(m, Math.abs(da[i] - db[i]));
  return m / scale;
}

function seeded(shape: number[], seed: number, mean = 0, std = 1) {
  return tf.randomNormal(shape, mean, std, "float32", seed);
}

const cases: { shape: [number, number, number, number]; groups: number; offset: number }[] = [
  { shape: [2, 5, 7, 8], groups: 2, offset: 0 },
  { shape: [3, 4, 4, 32], groups: 32, offset: 1.5 },
  { shape: [1, 3, 2, 6], groups: 1, offset: -2 },
  { shape: [4, 8, 8, 16], groups: 4, offset: 0.3 },
];

for (const backend of ["cpu", "wasm"]) {
  Deno.test(`groupNorm matches moments-based reference (values + grads) on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    for (const { shape, groups, offset } of cases) {
      tf.tidy(() => {
        const c = shape[3];
        const x = seeded(shape, 1, offset, 2) as tf.Tensor4D;
        const s = seeded([c], 2, 1, 0.5), bb = seeded([c], 3);
        const up = seeded(shape, 4); // random upstream gradient
        const fast = (xx: tf.Tensor, ss: tf.Tensor, b2: tf.Tensor) =>
          tf.sum(tf.mul(groupNorm(xx as tf.Tensor4D, ss, b2, groups), up));
        const ref = (xx: tf.Tensor, ss: tf.Tensor, b2: tf.Tensor) =>
          tf.sum(tf.mul(refGroupNorm(xx as tf.Tensor4D, ss, b2, groups), up));
        const where = `${backend} ${shape} G=${groups}`;
        assert.ok(maxRelDiff(groupNorm(x, s, bb, groups), refGroupNorm(x, s, bb, groups)) < 1e-5, where);
        const gf = tf.grads(fast)([x, s, bb]), gr = tf.grads(ref)([x, s, bb]);
        for (let i = 0; i < 3; i++) {
          const d = maxRelDiff(gf[i], gr[i]);
          assert.ok(d < 2e-4, `${where} grad ${i}: rel diff ${d}`);
        }
      });
    }
  });

  Deno.test(`standardizeKernel matches moments-based reference (values + grads) on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    for (
      const [shape, eps] of [[[3, 3, 4, 5], 1e-10], [[1, 1, 8, 3], 1e-5], [[7, 7, 3, 4], 1e-10]] as const
    ) {
      tf.tidy(() => {
        const w = seeded([...shape], 5, 0.2, 0.1) as tf.Tensor4D;
        const up = seeded([...shape], 6);
        const where = `${backend} ${shape}`;
        const a = standardizeKernel(w, eps);
        assert.deepEqual(a.shape, w.shape);
        assert.ok(maxRelDiff(a, refStandardize(w, eps)) < 1e-5, where);
        const gf = tf.grad((ww: tf.Tensor) => tf.sum(tf.mul(standardizeKernel(ww, eps), up)))(w);
        const gr = tf.grad((ww: tf.Tensor) => tf.sum(tf.mul(refStandardize(ww, eps), up)))(w);
        const d = maxRelDiff(gf, gr);
        assert.ok(d < 2e-4, `${where}: grad rel diff ${d}`);
      });
    }
  });
}

Deno.test("groupNorm rejects channels not divisible by groups and leaks no tensors", async () => {
  assert.ok(await tf.setBackend("cpu"));
  const x = tf.zeros([1, 2, 2, 6]) as tf.Tensor4D;
  assert.throws(() => groupNorm(x, tf.ones([6]), tf.zeros([6]), 4), /divisible by groups 4/);
  const s = tf.variable(tf.ones([6])), b = tf.variable(tf.zeros([6]));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(groupNorm(x, s, b, 3))) as tf.Scalar);
    value.dispose();
    tf.dispose(grads);
  }
  assert.equal(tf.memory().numTensors, before);
});

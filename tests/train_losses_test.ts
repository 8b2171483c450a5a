// Losses checked against plain-JS formulas (loops over softmax probabilities).
import * as tf from "@tensorflow/tfjs";
import assert from "assert";
import { kdLoss, xentLoss } from "../lib/train/losses.ts";

await tf.setBackend("cpu");

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const t = [[2, 1, 0.1, -3], [0, 0, 0, 0], [10, -10, 5, 0]];
const s = [[0.5, 0.2, 3, -1], [1, -1, 2, 0], [8, -9, 6, 1]];

Deno.test("kdLoss equals T²·mean KL(softmax(t/T) ‖ softmax(s/T)) computed with loops", () => {
  for (const T of [1, 2, 10]) {
    let sum = 0;
    for (let b = 0; b < t.length; b++) {
      const pt = softmax(t[b].map((v) => v / T)), ps = softmax(s[b].map((v) => v / T));
      for (let c = 0; c < pt.length; c++) sum += pt[c] * (Math.log(pt[c]) - Math.log(ps[c]));
    }
    const expected = T * T * sum / t.length;
    const got = tf.tidy(() => kdLoss(tf.tensor2d(t), tf.tensor2d(s), T).dataSync()[0]);
    assert.ok(Math.abs(got - expected) < 1e-5 * (1 + expected), `T=${T}: ${got} vs ${expected}`);
  }
  const same = tf.tidy(() => kdLoss(tf.tensor2d(t), tf.tensor2d(t), 2).dataSync()[0]);
  assert.ok(Math.abs(same) < 1e-6);
});

Deno.test("kdLoss stays finite for saturated teacher logits and its gradient is (p_s − p_t)·T/B", () => {
  const big = [[1000, -1000, 0, 0]];
  const v = tf.tidy(() => kdLoss(tf.tensor2d(big), tf.tensor2d([[0, 0, 0, 0]]), 1).dataSync()[0]);
  assert.ok(Number.isFinite(v));
  assert.ok(Math.abs(v - Math.log(4)) < 1e-4, `${v}`);
  const T = 2;
  const g = tf.tidy(() =>
    tf.grad((x: tf.Tensor) => kdLoss(tf.tensor2d(t), x as tf.Tensor2D, T))(tf.tensor2d(s))
  )
    .arraySync() as number[][];
  for (let b = 0; b < t.length; b++) {
    const pt = softmax(t[b].map((v) => v / T)), ps = softmax(s[b].map((v) => v / T));
    for (let c = 0; c < 4; c++) {
      const e = (ps[c] - pt[c]) * T / t.length;
      assert.ok(Math.abs(g[b][c] - e) < 1e-5, `grad[${b}][${c}] ${g[b][c]} vs ${e}`);
    }
  }
  assert.throws(
    () => kdLoss(tf.zeros([2, 3]) as tf.Tensor2D, tf.zeros([2, 4]) as tf.Tensor2D, 1),
    /differ in shape/,
  );
});

Deno.test("xentLoss equals mean −log softmax[label]", () => {
  const labels = [2, 0, 1];
  let expected = 0;
  for (let b = 0; b < 3; b++) expected -= Math.log(softmax(s[b])[labels[b]]);
  expected /= 3;
  for (const lab of [labels, Int32Array.from(labels)]) {
    const got = tf.tidy(() => xentLoss(tf.tensor2d(s), lab).dataSync()[0]);
    assert.ok(Math.abs(got - expected) < 1e-5, `${got} vs ${expected}`);
  }
  const got = tf.tidy(() => xentLoss(tf.tensor2d(s), tf.tensor1d(labels, "int32")).dataSync()[0]);
  assert.ok(Math.abs(got - expected) < 1e-5);
  assert.throws(() => xentLoss(tf.tensor2d(s), [0, 1, 4]), /label 4 at index 2/);
  assert.throws(() => xentLoss(tf.tensor2d(s), [0, 1]), /2 labels for a batch of 3/);
});

import assert from "assert";
import {
  agreement,
  argmax,
  confusionMatrix,
  meanKl,
  perClassAccuracy,
  summarize,
  top1,
  top5,
  topk,
} from "../lib/eval/metrics.ts";

// Three examples, four classes. Hand-ranked:
// row0 [0.1, 2.0, 0.5, -1]  order 1,2,0,3
// row1 [3, 3, 1, 0]         tie: order 0,1,2,3 (first max wins)
// row2 [-1, -2, -3, 5]      order 3,0,1,2
const L = new Float32Array([0.1, 2.0, 0.5, -1, 3, 3, 1, 0, -1, -2, -3, 5]);
const Y = new Int32Array([2, 1, 3]);

Deno.test("argmax takes the first maximum on ties", () => {
  assert.deepEqual([...argmax(L, 4)], [1, 0, 3]);
});

Deno.test("top-k against hand-ranked rows", () => {
  assert.equal(top1(L, Y, 4), 1 / 3);
  assert.equal(topk(L, Y, 4, 2), 1); // label 2 is 2nd in row0, label 1 loses the tie but is 2nd in row1
  // row1 with label 1: tie with class 0 which ranks first, so it is not top-1
  assert.equal(topk(new Float32Array([3, 3]), new Int32Array([1]), 2, 1), 0);
  assert.equal(topk(new Float32Array([3, 3]), new Int32Array([0]), 2, 1), 1);
});

Deno.test("top-5 excludes the 6th class, including ties broken by index", () => {
  // 6 classes, all equal: classes 0..4 are top-5, class 5 is not.
  const x = new Float32Array(12).fill(1);
  assert.equal(top5(x, new Int32Array([4, 5]), 6), 0.5);
  // descending logits, label at rank 5 (0-based) -> miss, rank 4 -> hit
  const y = new Float32Array([6, 5, 4, 3, 2, 1, 6, 5, 4, 3, 2, 1]);
  assert.equal(top5(y, new Int32Array([5, 4]), 6), 0.5);
});

Deno.test("agreement: teacher top-1 in the student's top-k", () => {
  const t = new Float32Array([0, 9, 0, /**/ 9, 0, 0, /**/ 0, 0, 9]); // teacher picks 1, 0, 2
  const s = new Float32Array([0, 9, 1, /**/ 1, 5, 0, /**/ 9, 0, 1]); // student picks 1, 1, 0; 2nd: 2, 0, 2
  assert.equal(agreement(t, s, 3, 1), 1 / 3);
  assert.equal(agreement(t, s, 3, 2), 1);
  assert.equal(agreement(t, t, 3, 1), 1);
});

Deno.test("meanKl matches the closed form, and temperature divides the logits", () => {
  // p = [.5,.5], q = [.25,.75]: KL = .5 ln(.5/.25) + .5 ln(.5/.75) = .5 ln(4/3)
  const want = 0.5 * Math.log(4 / 3);
  const t = new Float32Array([0, 0]);
  assert.ok(Math.abs(meanKl(t, new Float32Array([0, Math.log(3)]), 2) - want) < 1e-7);
  assert.ok(Math.abs(meanKl(t, new Float32Array([0, 2 * Math.log(3)]), 2, 2) - want) < 1e-7);
  // mean over rows: second row identical -> KL 0
  const t2 = new Float32Array([0, 0, 1, 2]);
  const s2 = new Float32Array([0, Math.log(3), 1, 2]);
  assert.ok(Math.abs(meanKl(t2, s2, 2) - want / 2) < 1e-7);
  assert.equal(meanKl(s2, s2, 2), 0);
  // direction: KL(t||s) != KL(s||t) in general
  assert.ok(Math.abs(meanKl(new Float32Array([0, Math.log(3)]), t, 2) - want) > 1e-3);
  // extreme logits stay finite
  assert.ok(Number.isFinite(meanKl(new Float32Array([1000, -1000]), new Float32Array([-1000, 1000]), 2)));
});

Deno.test("confusion matrix and per-class accuracy", () => {
  assert.deepEqual(confusionMatrix(L, Y, 4), [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]);
  const pc = perClassAccuracy(L, Y, 4);
  assert.ok(Number.isNaN(pc[0]));
  assert.deepEqual(pc.slice(1), [0, 0, 1]);
});

Deno.test("summarize: teacher and student records", () => {
  const t = new Float32Array([0, 9, 0, 9, 0, 0, 0, 0, 9]);
  const s = new Float32Array([0, 9, 1, 1, 5, 0, 9, 0, 1]);
  const y = new Int32Array([1, 0, 0]);
  const teacher = summarize({
    logits: t,
    labels: y,
    numClasses: 3,
    params: 1000,
    bytes: 4000,
    latency_ms_b1: 4,
    throughput_b64: 100,
  });
  assert.equal(teacher.top1, 2 / 3);
  assert.equal(teacher.top5, 1); // k clipped to C = 3
  assert.equal(teacher.agreement_top1, 1);
  assert.equal(teacher.kl, 0);
  assert.equal(teacher.compression, undefined);
  assert.equal(teacher.n, 3);
  const student = summarize({
    logits: s,
    labels: y,
    numClasses: 3,
    teacherLogits: t,
    params: 250,
    bytes: 1000,
    latency_ms_b1: 1,
    throughput_b64: 400,
    teacher: { params: 1000, latency_ms_b1: 4 },
  });
  assert.equal(student.top1, 2 / 3); // picks 1, 1, 0 vs labels 1, 0, 0
  assert.equal(student.agreement_top1, 1 / 3);
  assert.equal(student.compression, 4);
  assert.equal(student.speedup, 4);
  assert.deepEqual(student.confusion, [[1, 1, 0], [0, 1, 0], [0, 0, 0]]);
  assert.ok(student.kl > 0);
});

Deno.test("bad inputs fail with one clear sentence", () => {
  assert.throws(() => top1(new Float32Array(5), new Int32Array(2), 2), /not a multiple of numClasses 2/);
  assert.throws(() => top1(new Float32Array(4), new Int32Array(3), 2), /expected 2 labels/);
  assert.throws(() => top1(new Float32Array(4), new Int32Array([0, 2]), 2), /label 2 at index 1/);
  assert.throws(() => top1(new Float32Array([0, NaN]), new Int32Array([0]), 2), /row 0 class 1 is NaN/);
  assert.throws(() => agreement(new Float32Array(4), new Float32Array(6), 2), /teacher has 4/);
  assert.throws(() => top1(new Float32Array(0), new Int32Array(0), 2), /no examples/);
});

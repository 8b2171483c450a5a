/**
 * Classification and distillation metrics over raw logits.
 *
 * Why this module exists: the evaluate stage and the report must agree on exactly what "top-1",
 * "agreement" and "KL" mean, and these numbers decide whether a student ships. Everything here is a pure
 * function over plain typed arrays (no tf.js), so it is cheap to test against hand-computed values and
 * gives identical results on every backend.
 *
 * Conventions (big_vision `evaluators/proj/distill/distance.py`, see research/recipes.md §2.3):
 * - logits are a row-major `Float32Array` of shape [N, C]; labels an `Int32Array` of length N.
 * - ranking: class j ranks before class c when `x[j] > x[c]`, or `x[j] == x[c]` and `j < c`. So argmax
 *   takes the first maximum, and "c is in the top-k" means fewer than k classes rank before c.
 * - agreement@k: the teacher's top-1 class is among the student's top-k.
 * - KL: mean over rows of KL(softmax(t/T) ‖ softmax(s/T)) in nats, without the T² factor of the loss.
 * - accuracies are fractions in [0, 1].
 *
 * @module
 */

/** The metrics record of one model, as stored in `data/<ds>/eval/metrics.json`. */
export interface M {
  /** Top-1 accuracy against the labels, in [0, 1]. */
  top1: number;
  /** Top-5 accuracy (top-C when there are fewer than 5 classes), in [0, 1]. */
  top5: number;
  /** Fraction of examples where the teacher's top-1 is the student's top-1 (1 for the teacher itself). */
  agreement_top1: number;
  /** Fraction of examples where the teacher's top-1 is in the student's top-5. */
  agreement_top5: number;
  /** Mean KL(teacher ‖ student) of the softmaxes at temperature 1, in nats (0 for the teacher itself). */
  kl: number;
  /** Accuracy per true class; NaN (null once written as JSON) for a class with no examples. */
  per_class: number[];
  /** Counts, `confusion[true][predicted]`. */
  confusion: number[][];
  /** Number of parameters. */
  params: number;
  /** Size of the weights file on disk, in bytes. */
  bytes: number;
  /** Median forward latency of one image (batch 1), in milliseconds. */
  latency_ms_b1: number;
  /** Images per second of the forward pass at batch 64. */
  throughput_b64: number;
  /** Teacher params / these params (students only). */
  compression?: number;
  /** Teacher batch-1 latency / this batch-1 latency (students only). */
  speedup?: number;
  /** This batch-64 throughput / the teacher's (students only). */
  throughput_speedup?: number;
  /** Number of examples evaluated. */
  n?: number;
}

function rows(logits: Float32Array, numClasses: number, what: string): number {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`${what}: numClasses must be a positive integer, got ${numClasses}.`);
  }
  if (logits.length % numClasses !== 0) {
    throw new Error(
      `${what}: logits length ${logits.length} is not a multiple of numClasses ${numClasses}.`,
    );
  }
  const n = logits.length / numClasses;
  if (n === 0) throw new Error(`${what}: no examples (empty logits).`);
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i])) {
      throw new Error(
        `${what}: logits row ${Math.floor(i / numClasses)} class ${i % numClasses} is NaN (diverged model?).`,
      );
    }
  }
  return n;
}

function checkLabels(labels: Int32Array, n: number, numClasses: number, what: string): void {
  if (labels.length !== n) {
    throw new Error(`${what}: expected ${n} labels (one per logits row), got ${labels.length}.`);
  }
  for (let i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= numClasses) {
      throw new Error(`${what}: label ${labels[i]} at index ${i} is outside [0, ${numClasses}).`);
    }
  }
}

function checkPair(t: Float32Array, s: Float32Array, numClasses: number, what: string): number {
  const n = rows(t, numClasses, `${what} (teacher)`);
  rows(s, numClasses, `${what} (student)`);
  if (t.length !== s.length) {
    throw new Error(`${what}: teacher has ${t.length} logits but student has ${s.length}.`);
  }
  return n;
}

/** Index of the first maximum of row `r`. */
function rowArgmax(logits: Float32Array, r: number, c: number): number {
  const o = r * c;
  let best = 0;
  let bv = logits[o];
  for (let j = 1; j < c; j++) {
    if (logits[o + j] > bv) {
      bv = logits[o + j];
      best = j;
    }
  }
  return best;
}

/** Whether `target` is in the top-k of row `r` (first-index tie-break). */
function rowInTopK(logits: Float32Array, r: number, c: number, target: number, k: number): boolean {
  const o = r * c;
  const v = logits[o + target];
  let before = 0;
  for (let j = 0; j < c; j++) {
    const x = logits[o + j];
    if (x > v || (x === v && j < target)) {
      if (++before >= k) return false;
    }
  }
  return true;
}

/**
 * Predicted class of every row (the first maximum on ties).
 *
 * @example
 * ```ts
 * argmax(new Float32Array([1, 3, 3, 0, 0, 0]), 3); // Int32Array [1, 0]
 * ```
 */
export function argmax(logits: Float32Array, numClasses: number): Int32Array {
  const n = rows(logits, numClasses, "argmax");
  const out = new Int32Array(n);
  for (let r = 0; r < n; r++) out[r] = rowArgmax(logits, r, numClasses);
  return out;
}

/**
 * Fraction of rows whose label is among the k highest logits.
 *
 * @example
 * ```ts
 * topk(new Float32Array([0, 1, 2, 2, 1, 0]), new Int32Array([1, 1]), 3, 2); // 1
 * ```
 */
export function topk(logits: Float32Array, labels: Int32Array, numClasses: number, k: number): number {
  const n = rows(logits, numClasses, `top-${k}`);
  checkLabels(labels, n, numClasses, `top-${k}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`top-k: k must be a positive integer, got ${k}.`);
  let hit = 0;
  for (let r = 0; r < n; r++) if (rowInTopK(logits, r, numClasses, labels[r], k)) hit++;
  return hit / n;
}

/** Top-1 accuracy (argmax takes the first maximum). */
export function top1(logits: Float32Array, labels: Int32Array, numClasses: number): number {
  return topk(logits, labels, numClasses, 1);
}

/** Top-5 accuracy. */
export function top5(logits: Float32Array, labels: Int32Array, numClasses: number): number {
  return topk(logits, labels, numClasses, 5);
}

/**
 * Fraction of rows where the teacher's top-1 class is among the student's top-k.
 *
 * @example
 * ```ts
 * agreement(new Float32Array([0, 5]), new Float32Array([5, 0]), 2, 1); // 0
 * ```
 */
export function agreement(
  teacherLogits: Float32Array,
  studentLogits: Float32Array,
  numClasses: number,
  k = 1,
): number {
  const n = checkPair(teacherLogits, studentLogits, numClasses, `agreement@${k}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`agreement: k must be a positive integer, got ${k}.`);
  let hit = 0;
  for (let r = 0; r < n; r++) {
    const t = rowArgmax(teacherLogits, r, numClasses);
    if (rowInTopK(studentLogits, r, numClasses, t, k)) hit++;
  }
  return hit / n;
}

/** log-softmax of row r of x/T, in float64. */
function logSoftmaxRow(x: Float32Array, r: number, c: number, T: number, out: Float64Array): void {
  const o = r * c;
  let mx = -Infinity;
  for (let j = 0; j < c; j++) mx = Math.max(mx, x[o + j] / T);
  let sum = 0;
  for (let j = 0; j < c; j++) sum += Math.exp(x[o + j] / T - mx);
  const lse = mx + Math.log(sum);
  for (let j = 0; j < c; j++) out[j] = x[o + j] / T - lse;
}

/**
 * Mean over rows of KL(softmax(t/T) ‖ softmax(s/T)), in nats, computed in float64.
 *
 * @example
 * ```ts
 * meanKl(new Float32Array([0, 0]), new Float32Array([0, Math.log(3)]), 2); // 0.5·ln(0.5/0.25)+0.5·ln(0.5/0.75)
 * ```
 */
export function meanKl(
  teacherLogits: Float32Array,
  studentLogits: Float32Array,
  numClasses: number,
  T = 1,
): number {
  const n = checkPair(teacherLogits, studentLogits, numClasses, "meanKl");
  if (!(T > 0) || !Number.isFinite(T)) throw new Error(`meanKl: temperature must be > 0, got ${T}.`);
  const lt = new Float64Array(numClasses);
  const ls = new Float64Array(numClasses);
  let total = 0;
  for (let r = 0; r < n; r++) {
    logSoftmaxRow(teacherLogits, r, numClasses, T, lt);
    logSoftmaxRow(studentLogits, r, numClasses, T, ls);
    let kl = 0;
    for (let j = 0; j < numClasses; j++) {
      const p = Math.exp(lt[j]);
      if (p > 0) kl += p * (lt[j] - ls[j]);
    }
    total += Math.max(0, kl);
  }
  return total / n;
}

/**
 * Counts `m[true][predicted]` over all rows.
 *
 * @example
 * ```ts
 * confusionMatrix(new Float32Array([1, 0, 1, 0]), new Int32Array([0, 1]), 2); // [[1, 0], [1, 0]]
 * ```
 */
export function confusionMatrix(logits: Float32Array, labels: Int32Array, numClasses: number): number[][] {
  const n = rows(logits, numClasses, "confusionMatrix");
  checkLabels(labels, n, numClasses, "confusionMatrix");
  const m: number[][] = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let r = 0; r < n; r++) m[labels[r]][rowArgmax(logits, r, numClasses)]++;
  return m;
}

/**
 * Top-1 accuracy per true class; NaN for a class with no examples.
 *
 * @example
 * ```ts
 * perClassAccuracy(new Float32Array([1, 0, 1, 0]), new Int32Array([0, 1]), 2); // [1, 0]
 * ```
 */
export function perClassAccuracy(logits: Float32Array, labels: Int32Array, numClasses: number): number[] {
  const m = confusionMatrix(logits, labels, numClasses);
  return m.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total === 0 ? NaN : row[c] / total;
  });
}

/** Inputs of {@link summarize}. */
export interface SummarizeInput {
  /** This model's logits [N, C]. */
  logits: Float32Array;
  labels: Int32Array;
  numClasses: number;
  /** The teacher's logits on the same examples; omit when summarizing the teacher itself. */
  teacherLogits?: Float32Array;
  params: number;
  bytes: number;
  latency_ms_b1: number;
  throughput_b64: number;
  /** The teacher's size and latency, to fill `compression` and `speedup` (students only). */
  teacher?: { params: number; latency_ms_b1: number };
}

/**
 * The full metrics record of one model. For the teacher (no `teacherLogits`) agreement is 1 and KL 0.
 *
 * @example
 * ```ts
 * const m = summarize({ logits, labels, numClasses: 10, teacherLogits, params: 39008, bytes: 160000,
 *   latency_ms_b1: 1.2, throughput_b64: 3000, teacher: { params: 171334, latency_ms_b1: 3.1 } });
 * ```
 */
export function summarize(input: SummarizeInput): M {
  const { logits, labels, numClasses } = input;
  const t = input.teacherLogits ?? logits;
  const k5 = Math.min(5, numClasses);
  const confusion = confusionMatrix(logits, labels, numClasses);
  const m: M = {
    top1: top1(logits, labels, numClasses),
    top5: topk(logits, labels, numClasses, k5),
    agreement_top1: agreement(t, logits, numClasses, 1),
    agreement_top5: agreement(t, logits, numClasses, k5),
    kl: input.teacherLogits ? meanKl(t, logits, numClasses, 1) : 0,
    per_class: confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total === 0 ? NaN : row[c] / total;
    }),
    confusion,
    params: input.params,
    bytes: input.bytes,
    latency_ms_b1: input.latency_ms_b1,
    throughput_b64: input.throughput_b64,
  };
  if (input.teacher) {
    m.compression = input.teacher.params / input.params;
    m.speedup = input.teacher.latency_ms_b1 / input.latency_ms_b1;
  }
  m.n = labels.length;
  return m;
}

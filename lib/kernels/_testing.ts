/**
 * Test support for the kernel tests (tests/kernels_*_test.ts): run the same gradient computation on two
 * backends from identical inputs and report the worst relative difference.
 *
 * Why here: the three kernel test files share it, and tests/ holds only test files.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";

/** Deterministic pseudo-random floats in [-1, 1) (a small LCG; tests only). */
export function pseudoRandom(n: number, seed: number, levels = 0): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 4294967296 * 2 - 1;
    // levels > 0 quantises, producing ties (for max-pool first-max semantics)
    out[i] = levels > 0 ? Math.round(u * levels) / levels : u;
  }
  return out;
}

/** Input spec: shape and data. */
export interface Arg {
  shape: number[];
  data: Float32Array;
}

/** Make an Arg of the given shape filled with pseudo-random values. */
export function arg(shape: number[], seed: number, levels = 0): Arg {
  return { shape, data: pseudoRandom(shape.reduce((a, b) => a * b, 1), seed, levels) };
}

/**
 * Gradients of Σ f(args)·up with respect to every arg, plus the forward value, computed on `backend`.
 * `up` is a fixed pseudo-random upstream gradient so every output element matters.
 */
export async function gradsOn(
  backend: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  args: Arg[],
): Promise<Float32Array[]> {
  if (!await tf.setBackend(backend)) throw new Error(`backend ${backend} failed to initialise`);
  const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false; // no "install tfjs-node" banner in test output
  return tf.tidy(() => {
    const xs = args.map((a) => tf.tensor(a.data, a.shape));
    const y = f(...xs);
    const up = tf.tensor(pseudoRandom(y.size, 99), y.shape);
    const gs = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(f(...ts), up)))(xs);
    return [y, ...gs].map((t) => t.dataSync() as Float32Array);
  });
}

/** max |a-b| / max(|b|, tiny) over all pairs; Infinity on a length mismatch. */
export function relDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0, s = 1e-6;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) return Infinity;
    s = Math.max(s, Math.abs(b[i]));
  }
  return m / s;
}

/** A conv2d test case: input and kernel shapes, stride, padding. */
export interface ConvCase {
  x: number[];
  k: number[];
  stride: number | [number, number];
  pad: "same" | "valid" | [[number, number], [number, number], [number, number], [number, number]];
  dilation?: number;
}

/**
 * The grid the conv kernel tests share: kernel sizes 1/2/3/7 × strides 1/2 × same/valid/explicit padding, with
 * batch, height, width and channel counts varying per case (input channels 1..maxCi, outputs 1..maxCo).
 */
export function convCaseGrid(maxCi: number, maxCo: number): ConvCase[] {
  const pads: ConvCase["pad"][] = ["same", "valid", [[0, 0], [1, 2], [2, 0], [0, 0]]];
  const cases: ConvCase[] = [];
  let i = 0;
  for (const kk of [1, 2, 3, 7]) {
    for (const stride of [1, 2] as const) {
      for (const pad of pads) {
        const b = 1 + (i % 3), h = kk + 2 + (i % 4), w = kk + 1 + ((i * 7) % 5);
        const ci = 1 + (i % maxCi), co = 1 + ((i * 5) % maxCo);
        cases.push({ x: [b, h, w, ci], k: [kk, kk, ci, co], stride, pad });
        i++;
      }
    }
  }
  return cases;
}

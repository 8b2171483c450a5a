/**
 * Batch mixup for function matching, big_vision style.
 *
 * The partner of example i is example i−1 (`roll(x, 1)` along the batch, example 0 pairs with the last), never the
 * reversed batch: the seed repo's `tf.reverse` pairs i with B−1−i, so mixed i and mixed B−1−i are near-duplicates built
 * from the same two images (recipes.md §4.1). One coefficient per batch, `a = max(u, 1−u)` with u ~ U(0,1), so the
 * original image always dominates. Teacher and student must then be fed the very same mixed tensor.
 *
 * @example
 * ```ts
 * import { mixupCoefficient, mixupRoll } from "./mixup.ts";
 * const a = mixupCoefficient(rng);
 * const mixed = mixupRoll(batch.x, batch.shape[0], a);
 * ```
 * @module
 */

import type { Rng } from "../rng.ts";

/** Mixup coefficient `max(u, 1−u)`, u ~ U(0,1): in [0.5, 1]. Draws exactly one number from `rng`. */
export function mixupCoefficient(rng: Rng): number {
  const u = rng.next();
  return Math.max(u, 1 - u);
}

/**
 * Returns `x'` with `x'_i = a·x_i + (1−a)·x_{i−1}` and `x'_0 = a·x_0 + (1−a)·x_{B−1}` (roll by one along the batch).
 * `x` holds `batch` equally sized examples back to back; it is not modified.
 */
export function mixupRoll(x: Float32Array, batch: number, a: number): Float32Array {
  if (!Number.isInteger(batch) || batch <= 0 || x.length % batch !== 0) {
    throw new Error(`mixupRoll: ${x.length} values cannot be split into ${batch} equal examples.`);
  }
  const n = x.length / batch;
  const b = 1 - a;
  const out = new Float32Array(x.length);
  for (let i = 0; i < batch; i++) {
    const p = (i === 0 ? batch - 1 : i - 1) * n;
    const o = i * n;
    for (let k = 0; k < n; k++) out[o + k] = a * x[o + k] + b * x[p + k];
  }
  return out;
}

/**
 * Forward-pass latency and throughput, measured the same way for teacher and student.
 *
 * Why this module exists: "the student is N× faster" is half of the shipping decision, so both models
 * must be timed by one routine with warm-up (JIT, kernel compilation, allocator growth) excluded and a
 * robust statistic (the median of several repeats) reported. The caller supplies a closure that runs one
 * forward pass of `batch` images and waits for it to finish (e.g. `await y.data()` on tf.js).
 *
 * @module
 */

/** Options of {@link measureLatency}. */
export interface LatencyOptions {
  /** Images per call of `run`. */
  batch: number;
  /** Untimed calls before measuring (default 3). */
  warmup?: number;
  /** Timed calls; the median is reported (default 10). */
  repeats?: number;
  /** Clock in milliseconds (default `performance.now`); injectable for tests. */
  now?: () => number;
}

/** Result of {@link measureLatency}. */
export interface LatencyResult {
  /** Median wall time of one call of `run`, in milliseconds. */
  median_ms: number;
  /** `batch / median` in images per second. */
  images_per_s: number;
  /** Every timed call, in milliseconds, in order. */
  samples_ms: number[];
}

/** Median of a non-empty list (mean of the two middle values for an even length). */
export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error("median: empty list.");
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Times `run(batch)`: `warmup` untimed calls, then `repeats` timed ones.
 *
 * @example
 * ```ts
 * const { median_ms } = await measureLatency(async (b) => {
 *   const y = model.apply(tf.zeros([b, 32, 32, 3]));
 *   await y.data();
 *   y.dispose();
 * }, { batch: 1, warmup: 3, repeats: 20 });
 * ```
 */
export async function measureLatency(
  run: (batch: number) => Promise<void> | void,
  opts: LatencyOptions,
): Promise<LatencyResult> {
  const { batch } = opts;
  const warmup = opts.warmup ?? 3;
  const repeats = opts.repeats ?? 10;
  const now = opts.now ?? (() => performance.now());
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`measureLatency: batch must be a positive integer, got ${batch}.`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new Error(`measureLatency: warmup must be a non-negative integer, got ${warmup}.`);
  }
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new Error(`measureLatency: repeats must be a positive integer, got ${repeats}.`);
  }
  for (let i = 0; i < warmup; i++) await run(batch);
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = now();
    await run(batch);
    samples.push(now() - t0);
  }
  const m = median(samples);
  return { median_ms: m, images_per_s: m > 0 ? (batch * 1000) / m : Infinity, samples_ms: samples };
}

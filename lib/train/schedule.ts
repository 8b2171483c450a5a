// Learning-rate schedules as pure functions of the step number. They exist so that the optimizers stay
// schedule-agnostic (big_vision multiplies the whole update, weight decay included, by `sched(step)`) and so
// that the trainers, the report and the tests all evaluate exactly the same curve.

/**
 * big_vision's "warmup then cosine" multiplier (base 1.0), for a step counted from 0:
 * `min(1, step / warmup) · 0.5 · (1 + cos(π · clip((step − warmup) / (total − warmup), 0, 1)))`.
 * The first update (step 0) therefore has multiplier 0 when `warmup > 0`; steps at or past `total` give 0.
 */
export function warmupCosine(step: number, total: number, warmup: number): number {
  if (!(total > 0)) throw new Error(`warmupCosine: total steps must be > 0, got ${total}.`);
  if (!(warmup >= 0)) throw new Error(`warmupCosine: warmup steps must be >= 0, got ${warmup}.`);
  const ramp = warmup > 0 ? Math.min(1, step / warmup) : 1;
  const span = total - warmup;
  const frac = span > 0 ? Math.min(1, Math.max(0, (step - warmup) / span)) : (step >= warmup ? 1 : 0);
  return ramp * 0.5 * (1 + Math.cos(Math.PI * frac));
}

/**
 * Piecewise-constant schedule (Keras `PiecewiseConstantDecay` semantics): `values[0]` for `step <= boundaries[0]`,
 * `values[i]` for `boundaries[i-1] < step <= boundaries[i]`, `values[last]` after the last boundary.
 * Needs `values.length === boundaries.length + 1` and increasing boundaries.
 */
export function piecewise(boundaries: number[], values: number[]): (step: number) => number {
  if (values.length !== boundaries.length + 1) {
    throw new Error(
      `piecewise: expected ${
        boundaries.length + 1
      } values for ${boundaries.length} boundaries, got ${values.length}.`,
    );
  }
  for (let i = 1; i < boundaries.length; i++) {
    if (!(boundaries[i] > boundaries[i - 1])) {
      throw new Error(`piecewise: boundaries must increase, got ${boundaries.join(", ")}.`);
    }
  }
  const b = boundaries.slice();
  const v = values.slice();
  return (step: number) => {
    for (let i = 0; i < b.length; i++) if (step <= b[i]) return v[i];
    return v[v.length - 1];
  };
}

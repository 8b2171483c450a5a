// Schedules checked at their endpoints and against the closed-form formula.
import assert from "assert";
import { piecewise, warmupCosine } from "../lib/train/schedule.ts";

Deno.test("warmupCosine: endpoints, warmup ramp, midpoint, past the end", () => {
  assert.equal(warmupCosine(0, 1000, 100), 0);
  assert.ok(Math.abs(warmupCosine(50, 1000, 100) - 0.5) < 1e-12);
  assert.equal(warmupCosine(100, 1000, 100), 1);
  assert.ok(Math.abs(warmupCosine(550, 1000, 100) - 0.5) < 1e-12);
  assert.ok(Math.abs(warmupCosine(1000, 1000, 100)) < 1e-12);
  assert.ok(Math.abs(warmupCosine(5000, 1000, 100)) < 1e-12);
  const x = 0.3;
  assert.ok(Math.abs(warmupCosine(100 + 900 * x, 1000, 100) - 0.5 * (1 + Math.cos(Math.PI * x))) < 1e-12);
  assert.equal(warmupCosine(0, 10, 0), 1);
  // big_vision pets fast: 1500 warmup, 6469 total
  assert.ok(Math.abs(warmupCosine(1499, 6469, 1500) - 1499 / 1500) < 1e-12);
  assert.throws(() => warmupCosine(0, 0, 0), /total steps/);
});

Deno.test("piecewise: Keras PiecewiseConstantDecay boundaries (seed-repo teacher)", () => {
  const f = piecewise([200, 300, 400], [8e-5, 8e-6, 8e-8, 8e-9]);
  assert.equal(f(0), 8e-5);
  assert.equal(f(200), 8e-5);
  assert.equal(f(201), 8e-6);
  assert.equal(f(300), 8e-6);
  assert.equal(f(400), 8e-8);
  assert.equal(f(401), 8e-9);
  assert.throws(() => piecewise([1, 2], [1, 2]), /expected 3 values/);
  assert.throws(() => piecewise([2, 1], [1, 2, 3]), /must increase/);
});

import assert from "assert";
import { Rng } from "../lib/rng.ts";
import { mixupCoefficient, mixupRoll } from "../lib/data/mixup.ts";

Deno.test("mixup partners follow roll(x, 1), never reverse", () => {
  const B = 5, n = 2;
  // example i is filled with the value i
  const x = new Float32Array(B * n).map((_, k) => Math.floor(k / n));
  const a = 0.75;
  const y = mixupRoll(x, B, a);
  for (let i = 0; i < B; i++) {
    const partner = (i + B - 1) % B;
    const reversePartner = B - 1 - i;
    const want = a * i + (1 - a) * partner;
    for (let k = 0; k < n; k++) assert.ok(Math.abs(y[i * n + k] - want) < 1e-6, `example ${i}`);
    if (partner !== reversePartner) assert.notEqual(y[i * n], a * i + (1 - a) * reversePartner);
  }
  assert.deepEqual(Array.from(x.subarray(0, 4)), [0, 0, 1, 1]); // input untouched
  assert.throws(() => mixupRoll(new Float32Array(7), 2, 0.5), /cannot be split into 2/);
});

Deno.test("mixup coefficient is max(u, 1-u) in [0.5, 1] and seeded", () => {
  const r = new Rng(3);
  let lo = 1, hi = 0, sum = 0;
  for (let i = 0; i < 10000; i++) {
    const a = mixupCoefficient(r);
    lo = Math.min(lo, a), hi = Math.max(hi, a), sum += a;
  }
  assert.ok(lo >= 0.5 && lo < 0.51 && hi < 1 && hi > 0.99);
  assert.ok(Math.abs(sum / 10000 - 0.75) < 0.01);
  const u = new Rng(9).next();
  assert.equal(mixupCoefficient(new Rng(9)), Math.max(u, 1 - u));
});

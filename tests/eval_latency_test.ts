import assert from "assert";
import { measureLatency, median } from "../lib/eval/latency.ts";

Deno.test("median of odd and even lists", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), /empty/);
});

Deno.test("measureLatency skips warm-up and reports the median of the timed calls", async () => {
  // Fake clock: each call advances time by a scripted duration; warm-up calls are slow.
  const durations = [100, 100, 5, 7, 6, 50, 6];
  let t = 0;
  let call = 0;
  const batches: number[] = [];
  const r = await measureLatency((b) => {
    batches.push(b);
    t += durations[call++];
  }, { batch: 64, warmup: 2, repeats: 5, now: () => t });
  assert.equal(call, 7);
  assert.deepEqual(batches, [64, 64, 64, 64, 64, 64, 64]);
  assert.deepEqual(r.samples_ms, [5, 7, 6, 50, 6]);
  assert.equal(r.median_ms, 6);
  assert.ok(Math.abs(r.images_per_s - 64000 / 6) < 1e-9);
});

Deno.test("measureLatency awaits async runs and rejects bad options", async () => {
  let done = 0;
  const r = await measureLatency(async () => {
    await new Promise((res) => setTimeout(res, 2));
    done++;
  }, { batch: 1, warmup: 1, repeats: 3 });
  assert.equal(done, 4);
  assert.ok(r.median_ms >= 1, `median ${r.median_ms}`);
  await assert.rejects(() => measureLatency(() => {}, { batch: 0 }), /batch must be a positive integer/);
  await assert.rejects(() => measureLatency(() => {}, { batch: 1, repeats: 0 }), /repeats/);
});

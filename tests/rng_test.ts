import assert from "assert";
import { hashSeed, Rng } from "../lib/rng.ts";

Deno.test("same seed gives the same stream, different seeds differ", () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const sa = Array.from({ length: 8 }, () => a.uint32());
  const sb = Array.from({ length: 8 }, () => b.uint32());
  const sc = Array.from({ length: 8 }, () => c.uint32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  assert.notDeepEqual(new Rng("teacher/init").state(), new Rng("teacher/inif").state());
});

Deno.test("next is uniform in [0,1), int in range and unbiased-looking, normal has mean 0 var 1", () => {
  const r = new Rng(1);
  let sum = 0;
  const counts = new Array(7).fill(0);
  let ns = 0, ns2 = 0;
  const N = 70000;
  for (let i = 0; i < N; i++) {
    const u = r.next();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    counts[r.int(7)]++;
    const z = r.normal();
    ns += z;
    ns2 += z * z;
  }
  assert.ok(Math.abs(sum / N - 0.5) < 0.01);
  for (const c of counts) assert.ok(Math.abs(c - N / 7) < 0.05 * N / 7, `counts ${counts}`);
  assert.ok(Math.abs(ns / N) < 0.02);
  assert.ok(Math.abs(ns2 / N - 1) < 0.03);
  assert.throws(() => r.int(0), /positive integer/);
});

Deno.test("state round-trips exactly and fork does not advance the parent", () => {
  const r = new Rng("x");
  r.next();
  const s = r.state();
  const f1 = r.fork("aug");
  assert.deepEqual(r.state(), s);
  const f2 = r.fork("aug");
  assert.equal(f1.uint32(), f2.uint32());
  assert.notEqual(r.fork("aug").uint32(), r.fork("init").uint32());
  const restored = Rng.fromState(JSON.parse(JSON.stringify(s)));
  assert.deepEqual(
    Array.from({ length: 5 }, () => restored.next()),
    Array.from({ length: 5 }, () => r.next()),
  );
  assert.throws(() => Rng.fromState([1, 2, 3]), /four uint32/);
});

Deno.test("hashSeed is stable, order- and type-sensitive", () => {
  assert.equal(hashSeed(1, 2, 3), hashSeed(1, 2, 3));
  assert.notEqual(hashSeed(1, 2, 3), hashSeed(3, 2, 1));
  assert.notEqual(hashSeed(1), hashSeed("1"));
  assert.notEqual(hashSeed("ab", "c"), hashSeed("a", "bc"));
  const h = hashSeed(0, 0, 0);
  assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  // pinned value: changing the hash would silently change every per-example seed
  assert.equal(hashSeed("funmatch", 7), 4025446483);
  assert.equal(new Rng(0).uint32(), 320289054);
});

// weights.bin: deterministic bytes, round trip, atomic write, clear errors on damaged files.
import * as tf from "@tensorflow/tfjs";
import assert from "assert";
import { assignParams, decodeWeights, loadWeights, saveWeights } from "../lib/model/weights.ts";

await tf.setBackend("cpu");

Deno.test("saveWeights: same tensors in any insertion order give identical bytes; load round-trips", async () => {
  const dir = await Deno.makeTempDir();
  const a = tf.tensor([1.5, -2, 3e-8, 4], [2, 2]);
  const b = tf.tensor([7, 8, 9]);
  const c = tf.tensor([3], [1], "int32");
  await saveWeights(
    `${dir}/x/w1.bin`,
    new Map<string, tf.Tensor>([["b/bias", b], ["a/kernel", a], ["c", c]]),
  );
  await saveWeights(
    `${dir}/x/w2.bin`,
    new Map<string, tf.Tensor>([["c", c], ["a/kernel", a], ["b/bias", b]]),
  );
  const [w1, w2] = [await Deno.readFile(`${dir}/x/w1.bin`), await Deno.readFile(`${dir}/x/w2.bin`)];
  assert.deepEqual(w1, w2);
  assert.equal(new TextDecoder().decode(w1.subarray(0, 8)), "FMWEIGHT");
  const loaded = await loadWeights(`${dir}/x/w1.bin`);
  assert.deepEqual([...loaded.keys()], ["a/kernel", "b/bias", "c"]);
  assert.deepEqual(loaded.get("a/kernel")!.shape, [2, 2]);
  assert.deepEqual(Array.from(loaded.get("a/kernel")!.data), Array.from(a.dataSync()));
  assert.deepEqual(Array.from(loaded.get("c")!.data), [3]);
  // no temporary left behind
  assert.deepEqual([...Deno.readDirSync(`${dir}/x`)].map((e) => e.name).sort(), ["w1.bin", "w2.bin"]);
  // the data section starts 8-aligned and is little-endian float32
  const headerLen = new DataView(w1.buffer).getUint32(12, true);
  assert.equal((16 + headerLen) % 8, 0);
  assert.equal(new DataView(w1.buffer).getFloat32(16 + headerLen, true), 1.5);
  tf.dispose([a, b, c]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadWeights: damaged files fail with a sentence naming file and byte", async () => {
  const dir = await Deno.makeTempDir();
  const t = tf.tensor([1, 2, 3, 4]);
  await saveWeights(`${dir}/w.bin`, new Map([["k", t]]));
  const good = await Deno.readFile(`${dir}/w.bin`);
  assert.throws(
    () => decodeWeights(good.slice(0, good.length - 4), "cut.bin"),
    /cut\.bin: tensor "k" .* runs past the end/,
  );
  const bad = good.slice();
  bad[0] = 0x41;
  assert.throws(() => decodeWeights(bad, "bad.bin"), /bad\.bin: not a funmatch weights file/);
  await assert.rejects(loadWeights(`${dir}/nope.bin`), /nope\.bin: cannot read/);
  t.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("assignParams: copies by name, refuses missing names and wrong shapes, honours skippable", () => {
  const params = new Map([["a/kernel", tf.variable(tf.zeros([2]))], [
    "head/kernel",
    tf.variable(tf.zeros([2, 3])),
  ]]);
  const src = new Map([["a/kernel", { shape: [2], data: new Float32Array([1, 2]) }]]);
  assert.throws(
    () => assignParams(params, src, "src.bin"),
    /src\.bin: 1 parameter\(s\) missing, e\.g\. "head\/kernel"/,
  );
  const r = assignParams(params, src, "src.bin", { skippable: (n) => n.startsWith("head/") });
  assert.deepEqual(r, { assigned: ["a/kernel"], skipped: ["head/kernel"] });
  assert.deepEqual(Array.from(params.get("a/kernel")!.dataSync()), [1, 2]);
  const wrong = new Map([...src, ["head/kernel", { shape: [3, 2], data: new Float32Array(6) }]]);
  assert.throws(
    () => assignParams(params, wrong, "w.bin"),
    /w\.bin: "head\/kernel" has shape \[3,2\], the model needs \[2,3\]/,
  );
  const extra = new Map([...src, ["head/kernel", { shape: [2, 3], data: new Float32Array(6) }], [
    "zzz",
    src.get("a/kernel")!,
  ]]);
  assert.throws(
    () => assignParams(params, extra, "e.bin"),
    /e\.bin: 1 entr\(ies\) match no parameter, e\.g\. "zzz"/,
  );
  tf.dispose([...params.values()]);
});

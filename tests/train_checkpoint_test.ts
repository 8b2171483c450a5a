// Checkpoints: atomic replace keeping only the latest, crash recovery, damaged files, and exact resume of a
// real (tiny) BiT + Adam training run through save/load.
import * as tf from "@tensorflow/tfjs";
import assert from "assert";
import { initBackend } from "../lib/backend.ts";
import { bitSpec, buildModel, type Model } from "../lib/model/bit.ts";
import { Rng } from "../lib/rng.ts";
import { loadCheckpoint, saveCheckpoint } from "../lib/train/checkpoint.ts";
import { kdLoss } from "../lib/train/losses.ts";
import { Adam, valueAndGrads } from "../lib/train/optim.ts";
import { warmupCosine } from "../lib/train/schedule.ts";

await initBackend({ backend: "wasm", quiet: true });

Deno.test("save/load round trip; only the latest kept; recovery from <dir>.old-*; damaged state is an error", async () => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/checkpoints/teacher`;
  assert.equal(await loadCheckpoint(dir), null);
  const p = new Map<string, tf.Tensor>([["a/kernel", tf.tensor([1, 2, 3])]]);
  const o = new Map<string, tf.Tensor>([["count", tf.scalar(5)], ["mu/a/kernel", tf.tensor([0.5, 0, -1])]]);
  for (const step of [5, 10]) {
    await saveCheckpoint(dir, {
      step,
      params: p,
      optState: o,
      rng: [1, 2, 3, 4],
      input: { epoch: 1, position: step * 4 },
      extra: { history: [{ step, loss: 0.5 }] },
      depsHash: "abc",
    });
  }
  const c = (await loadCheckpoint(dir))!;
  assert.equal(c.step, 10);
  assert.deepEqual(c.input, { epoch: 1, position: 40 });
  assert.deepEqual(c.extra, { history: [{ step: 10, loss: 0.5 }] });
  assert.deepEqual(c.rng, [1, 2, 3, 4]);
  assert.equal(c.depsHash, "abc");
  assert.deepEqual(Array.from(c.params.get("a/kernel")!.data), [1, 2, 3]);
  assert.deepEqual(Array.from(c.optState.get("mu/a/kernel")!.data), [0.5, 0, -1]);
  assert.deepEqual([...Deno.readDirSync(`${root}/checkpoints`)].map((e) => e.name), ["teacher"]);
  assert.equal(await loadCheckpoint(dir, { expectDepsHash: "other" }), null);
  // crash between the two renames: only <dir>.old-<pid> exists
  await Deno.rename(dir, `${dir}.old-4242`);
  assert.equal((await loadCheckpoint(dir))!.step, 10);
  await saveCheckpoint(dir, {
    step: 11,
    params: p,
    optState: o,
    rng: [],
    input: {},
    extra: {},
    depsHash: "abc",
  });
  assert.deepEqual([...Deno.readDirSync(`${root}/checkpoints`)].map((e) => e.name), ["teacher"]);
  await Deno.writeTextFile(`${dir}/state.json`, "{");
  await assert.rejects(loadCheckpoint(dir), /teacher\/state\.json: cannot read the checkpoint state/);
  tf.dispose([...p.values(), ...o.values()]);
  await Deno.remove(root, { recursive: true });
});

const ARCH = "bit-basic:root=4,widths=8-8,units=1-1,strides=2-2";

function batch(step: number): tf.Tensor4D {
  const r = new Rng(`batch/${step}`);
  return tf.tensor4d(Float32Array.from({ length: 4 * 8 * 8 * 3 }, () => r.normal()), [4, 8, 8, 3]);
}

function trainSteps(student: Model, teacher: Model, opt: Adam, from: number, to: number, total = 6) {
  for (let step = from; step < to; step++) {
    const x = batch(step);
    const t = tf.tidy(() => teacher.apply(x));
    const { value, grads } = valueAndGrads(student.params, () => kdLoss(t, student.apply(x), 2));
    opt.step(grads, warmupCosine(step, total, 2));
    tf.dispose([x, t, value, ...grads.values()]);
  }
}

Deno.test("exact resume: 3 steps + checkpoint + fresh model/optimizer + 3 steps == 6 steps, bit for bit", async () => {
  const dir = await Deno.makeTempDir();
  const teacher = buildModel(bitSpec(ARCH, 3), new Rng("t"));
  for (const v of teacher.params.values()) {
    const r = new Rng(v.shape.join());
    v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => r.normal()), v.shape));
  }
  const a = buildModel(bitSpec(ARCH, 3), new Rng("s"));
  const optA = new Adam(a.params, { lr: 0.01, wd: 1e-3 });
  trainSteps(a, teacher, optA, 0, 6);

  const b = buildModel(bitSpec(ARCH, 3), new Rng("s"));
  const optB = new Adam(b.params, { lr: 0.01, wd: 1e-3 });
  trainSteps(b, teacher, optB, 0, 3);
  await saveCheckpoint(dir, {
    step: 3,
    params: b.params,
    optState: optB.state(),
    rng: [],
    input: {},
    extra: {},
    depsHash: "h",
  });
  optB.dispose();
  b.dispose();

  const c = buildModel(bitSpec(ARCH, 3), new Rng("other seed"));
  const optC = new Adam(c.params, { lr: 0.01, wd: 1e-3 });
  const ck = (await loadCheckpoint(dir))!;
  for (const [name, v] of c.params) {
    const w = ck.params.get(name)!;
    tf.tidy(() => v.assign(tf.tensor(w.data, w.shape)));
  }
  optC.restore(ck.optState);
  trainSteps(c, teacher, optC, ck.step, 6);
  for (const [name, v] of a.params) assert.deepEqual(c.params.get(name)!.dataSync(), v.dataSync(), name);
  for (const m of [a, c, teacher]) m.dispose();
  optA.dispose();
  optC.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("no tensor leak: numTensors after step 10 equals after step 100 (teacher fwd + student fwd/bwd + Adam)", () => {
  const teacher = buildModel(bitSpec(ARCH, 3), new Rng("t"));
  const student = buildModel(bitSpec(ARCH, 3), new Rng("s"));
  const opt = new Adam(student.params, { lr: 0.01, wd: 1e-3 });
  trainSteps(student, teacher, opt, 0, 10, 100);
  const n10 = tf.memory().numTensors;
  trainSteps(student, teacher, opt, 10, 100, 100);
  assert.equal(tf.memory().numTensors, n10);
  opt.state();
  assert.equal(tf.memory().numTensors, n10);
  for (const m of [teacher, student]) m.dispose();
  opt.dispose();
});

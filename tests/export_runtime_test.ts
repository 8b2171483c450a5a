// Tests for lib/export/teacher_runtime.ts + teacher_worker.ts: the ORT Worker runtime returns exactly the logits
// of a direct in-process session (several submits in flight, dynamic batch), transfers whole-buffer inputs,
// copies views, fails clearly, and "auto"/"tfjs" fall back to the TF.js forward.
// Run: deno test -A tests/export_runtime_test.ts
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { bitSpec, buildModel, type Model } from "../lib/model/bit.ts";
import { Rng } from "../lib/rng.ts";
import { exportOnnx } from "../lib/export/onnx.ts";
import { createSession, runLogits } from "../lib/export/ort.ts";
import { createTeacherRuntime } from "../lib/export/teacher_runtime.ts";

await initBackend({ backend: "wasm", quiet: true });

function teacher(): Model {
  const rng = new Rng("runtime-test");
  const m = buildModel(bitSpec("d10-6s", 10), rng.fork("init"));
  const r = rng.fork("affine");
  for (const [name, v] of m.params) {
    if (!name.endsWith("/scale") && !name.endsWith("/bias") && name !== "head/kernel") continue;
    const d = new Float32Array(v.size).map(() => (name.endsWith("/scale") ? 1 : 0) + 0.5 * r.normal());
    v.assign(tf.tensor(d, v.shape));
  }
  return m;
}

function input(n: number, seed: string): Float32Array {
  const r = new Rng(seed);
  return new Float32Array(n * 32 * 32 * 3).map(() => r.normal());
}

const model = teacher();
const bytes = exportOnnx(model.spec, model.params, { imageSize: 32 });

Deno.test("ONNX Worker runtime = direct session, bit for bit, with 3 submits in flight and different batch sizes", async () => {
  const session = await createSession(bytes, { threads: 1 });
  const xs = [input(4, "a"), input(1, "b"), input(7, "c")];
  const direct = [];
  for (const x of xs) direct.push(await runLogits(session, x, [x.length / 3072, 32, 32, 3]));
  await session.release();

  const rt = await createTeacherRuntime({ runtime: "onnx", onnxBytes: bytes });
  try {
    assert.equal(rt.name, "onnx");
    const got = await Promise.all(xs.map((x) => rt.submit(x.slice(), [x.length / 3072, 32, 32, 3])));
    for (let i = 0; i < xs.length; i++) {
      assert.equal(got[i].length, (xs[i].length / 3072) * 10);
      assert.deepEqual(got[i], direct[i], `submit ${i}`);
    }
  } finally {
    rt.close();
  }
});

Deno.test("submit transfers a whole-buffer input (detached after) and copies a view (left intact)", async () => {
  const rt = await createTeacherRuntime({ runtime: "onnx", onnxBytes: bytes });
  try {
    const x = input(2, "t");
    const keep = x.slice();
    const p = rt.submit(x, [2, 32, 32, 3]);
    assert.equal(x.byteLength, 0, "x should be detached (its buffer moved to the worker)");
    const big = new Float32Array(3 * 3072);
    big.set(keep, 3072);
    const view = big.subarray(3072);
    const q = rt.submit(view, [2, 32, 32, 3]);
    assert.equal(view.length, 2 * 3072, "a view must not be detached");
    const [a, b] = await Promise.all([p, q]);
    assert.deepEqual(a, b);
  } finally {
    rt.close();
  }
});

Deno.test("TF.js runtime (and 'auto' without a model) gives model.apply's logits, within 1e-4 of ORT", async () => {
  const x = input(3, "tf");
  const ref = tf.tidy(() => model.apply(tf.tensor4d(x, [3, 32, 32, 3]))).dataSync() as Float32Array;
  const onnx = await createTeacherRuntime({ runtime: "onnx", onnxBytes: bytes });
  const ortOut = await onnx.submit(x.slice(), [3, 32, 32, 3]);
  onnx.close();
  for (const opts of [{ runtime: "tfjs" as const }, { runtime: "auto" as const, quiet: true }]) {
    const rt = await createTeacherRuntime({ ...opts, tfjsApply: (t) => model.apply(t) });
    assert.equal(rt.name, "tfjs");
    const before = tf.memory().numTensors;
    const got = await rt.submit(x, [3, 32, 32, 3]);
    assert.equal(tf.memory().numTensors, before, "the TF.js runtime must not leak tensors");
    assert.equal(x.length, 3 * 3072, "the TF.js runtime leaves x intact");
    assert.deepEqual(got, ref);
    let d = 0;
    for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - ortOut[i]));
    assert.ok(d < 1e-4, `TF.js vs ORT worker: ${d}`);
    rt.close();
    await assert.rejects(rt.submit(x, [3, 32, 32, 3]), /closed/);
  }
});

Deno.test("'auto' takes ONNX when it loads; close() rejects later submits; bad inputs fail with one sentence", async () => {
  const rt = await createTeacherRuntime({
    runtime: "auto",
    onnxBytes: bytes,
    tfjsApply: (t) => model.apply(t),
  });
  assert.equal(rt.name, "onnx");
  await assert.rejects(
    rt.submit(input(1, "w"), [1, 16, 16, 3]),
    /3072 floats, shape \[1,16,16,3\] needs 768/,
  );
  const ok = await rt.submit(input(1, "w"), [1, 32, 32, 3]); // the worker survives a bad request
  assert.equal(ok.length, 10);
  rt.close();
  rt.close(); // idempotent
  await assert.rejects(rt.submit(input(1, "z"), [1, 32, 32, 3]), /teacher runtime \(onnx\) is closed/);

  await assert.rejects(createTeacherRuntime({ runtime: "onnx" }), /needs onnxBytes/);
  const garbage = new Uint8Array([8, 8, 0x3a, 2, 0xff, 0xff]);
  await assert.rejects(
    createTeacherRuntime({ runtime: "onnx", onnxBytes: garbage }),
    /ONNX Runtime rejected/,
  );
  const fallback = await createTeacherRuntime({
    runtime: "auto",
    onnxBytes: garbage,
    tfjsApply: (t) => model.apply(t),
    quiet: true,
  });
  assert.equal(fallback.name, "tfjs");
  fallback.close();
});

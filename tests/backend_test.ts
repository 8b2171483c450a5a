// Tests for lib/backend.ts: the fallback chain lands on a working backend with one line per attempt, and the
// chosen backend can train a conv net (our gradient kernels are registered).
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { gpuAvailable, initBackend } from "../lib/backend.ts";

Deno.test("initBackend picks a backend, reports every attempt, and is idempotent", async () => {
  const info = await initBackend({ quiet: true });
  assert.ok(["tensorflow", "wasm", "cpu"].includes(info.name));
  assert.equal(tf.getBackend(), info.name);
  assert.ok(info.threads >= 1);
  assert.match(info.tried[info.tried.length - 1], new RegExp(`^using ${info.name}`));
  if (info.name !== "tensorflow") {
    // here the native packages cannot load: both attempts must be reported, with the reason (a first run
    // also says it built the native conv kernels)
    const attempts = info.tried.filter((t) => !/^native kernels /.test(t));
    // on wasm without the native kernels (no compiler, FUNMATCH_NATIVE=0) one line says why
    if (info.name === "wasm" && !info.native) {
      assert.ok(
        info.tried.some((t) => /^native kernels unavailable: .+; convolutions stay on XNNPACK$/.test(t)),
      );
    }
    assert.equal(attempts.length, 3, attempts.join(" | "));
    assert.match(attempts[0], /^@tensorflow\/tfjs-node-gpu unavailable: /);
    assert.match(attempts[1], /^@tensorflow\/tfjs-node unavailable: /);
  }
  assert.strictEqual(await initBackend({ quiet: true }), info);
  await assert.rejects(initBackend({ backend: "cpu", quiet: true }), /already initialised/);
  assert.equal(typeof await gpuAvailable(), "boolean");
});

Deno.test("the selected backend trains a small conv net (conv grads registered)", async () => {
  await initBackend({ quiet: true });
  const w = tf.variable(tf.randomNormal([3, 3, 2, 4], 0, 0.3, "float32", 7));
  const x = tf.randomNormal([2, 6, 6, 2], 0, 1, "float32", 8) as tf.Tensor4D;
  const loss = () => tf.mean(tf.square(tf.sub(tf.conv2d(x, w as tf.Tensor4D, 1, "same"), 1))) as tf.Scalar;
  const opt = tf.train.sgd(0.05);
  const first = loss().dataSync()[0];
  for (let i = 0; i < 20; i++) opt.minimize(loss);
  const last = loss().dataSync()[0];
  assert.ok(last < 0.7 * first, `loss ${first} → ${last}`);
});

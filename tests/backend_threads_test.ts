// Threads through lib/backend.ts, both ways `threads` is spent: the threaded wasm build (native kernels off)
// starts under Deno or falls back to one thread with the reason said; the native conv kernels run on N threads.
// Either way training gives the same numbers, bit for bit, as one thread (the config documents `threads` as a
// speed-only knob). A process has one backend, so each setting trains in its own subprocess.
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { loadNative } from "../lib/kernels/native/build.ts";
import { bitSpec, buildModel } from "../lib/model/bit.ts";
import { Rng } from "../lib/rng.ts";

/** Child: three Adam steps of d10-6s on seeded data; prints backend info, the losses and a weight checksum. */
async function child(threads: number, native: "auto" | "off") {
  const info = await initBackend({ backend: "wasm", threads, native, quiet: true });
  const model = buildModel(bitSpec("d10-6s", 10), new Rng("threads-test/init"));
  const rng = new Rng("threads-test/x");
  const x = tf.tensor4d(new Float32Array(32 * 32 * 32 * 3).map(() => rng.normal()), [32, 32, 32, 3]);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: 32 }, (_, i) => (i * 7) % 10), "int32"), 10);
  const opt = tf.train.adam(1e-2);
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const l = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x)) as tf.Scalar, true)!;
    losses.push(l.dataSync()[0]);
    l.dispose();
  }
  let checksum = 0;
  for (const v of model.params.values()) checksum += tf.tidy(() => tf.sum(tf.abs(v)).dataSync()[0]);
  console.log(
    JSON.stringify({ threads: info.threads, native: info.native, tried: info.tried, losses, checksum }),
  );
}

async function runChild(threads: number, native: "auto" | "off") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--child", String(threads), native],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success, `child (${threads} threads) failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text.split("\n").pop()!) as {
    threads: number;
    native: boolean;
    tried: string[];
    losses: number[];
    checksum: number;
  };
}

if (import.meta.main && Deno.args[0] === "--child") {
  await child(Number(Deno.args[1]), Deno.args[2] as "auto" | "off");
  Deno.exit(0);
}

Deno.test({
  name: "wasm with 2 threads starts (or falls back, saying why) and trains bit-identically to 1 thread",
  // the wasm thread pool's Workers outlive the child process only; nothing leaks into this one
  fn: async () => {
    const one = await runChild(1, "off");
    const two = await runChild(2, "off");
    assert.equal(one.native, false);
    assert.equal(one.threads, 1);
    if (two.threads === 1) {
      assert.ok(
        two.tried.some((t) => /^wasm with 2 threads failed \(.+\); using 1 thread$/.test(t)),
        `a fallback must say why: ${two.tried.join(" | ")}`,
      );
    } else {
      assert.equal(two.threads, 2);
      assert.match(two.tried[two.tried.length - 1], /^using wasm \(2 threads\)$/);
    }
    assert.ok(one.losses[2] < one.losses[0], `training must lower the loss: ${one.losses}`);
    assert.deepEqual(two.losses, one.losses);
    assert.equal(two.checksum, one.checksum);
  },
});

const nativeOk = (await loadNative()).ok;

Deno.test({
  name: "native conv kernels on 2 threads train bit-identically to 1 thread, and the choice is said",
  ignore: !nativeOk,
  fn: async () => {
    const one = await runChild(1, "auto");
    const two = await runChild(2, "auto");
    assert.equal(one.native, true);
    assert.equal(two.native, true);
    assert.match(two.tried[two.tried.length - 1], /^using wasm, native convolutions on 2 threads$/);
    assert.ok(one.losses[2] < one.losses[0], `training must lower the loss: ${one.losses}`);
    assert.deepEqual(two.losses, one.losses);
    assert.equal(two.checksum, one.checksum);
    // the XNNPACK path agrees to float precision but not to the bit (another summation order)
    const xnn = await runChild(1, "off");
    assert.ok(Math.abs(xnn.losses[0] - one.losses[0]) < 1e-4 * Math.abs(one.losses[0]));
    assert.notEqual(xnn.checksum, one.checksum);
  },
});

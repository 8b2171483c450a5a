/**
 * The training loop on real (tiny) TFRecords: a teacher and a function-matching student train and lower
 * their loss; an interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one;
 * the live tensor count stays flat; the teacher is called online on every distillation step.
 */
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { initBackend } from "../lib/backend.ts";
import { encodeExample } from "../lib/data/example.ts";
import { writeTFRecordFile } from "../lib/data/tfrecord.ts";
import { trainTeacher } from "../lib/train/teacher.ts";
import { distillStudent } from "../lib/train/distill.ts";
import type { Config } from "../lib/config/mod.ts";

await initBackend({ backend: "wasm", quiet: true });

async function photo(label: number, i: number): Promise<Uint8Array> {
  const w = 12, h = 12;
  const px = new Uint8Array(w * h * 3);
  let s = (label * 31 + i * 1009 + 7) >>> 0;
  for (let k = 0; k < px.length; k++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    px[k] = Math.max(0, Math.min(255, ((k % 3) === label ? 210 : 30) + ((s >>> 24) % 40) - 20));
  }
  return new Uint8Array(await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
}

const root = await Deno.makeTempDir({ prefix: "funmatch-loop-" });
for (const [split, n] of [["train", 24], ["validation", 6], ["test", 6]] as const) {
  await Deno.mkdir(`${root}/tfrecords/${split}`, { recursive: true });
  const recs = [];
  for (let i = 0; i < n; i++) recs.push(encodeExample({ image: await photo(i % 3, i), class: [i % 3] }));
  await writeTFRecordFile(`${root}/tfrecords/${split}/${split}_t-0-${n}.tfrec`, recs);
}

function config(steps: number): Config {
  return {
    name: "t",
    num_classes: 3,
    seed: 3,
    data: { keys: { image: "image", label: "class" }, workers: 0, prefetch: 2 },
    teacher: {
      arch: "bit-basic:root=4,widths=8-8,units=1-1,strides=2-2",
      image_size: 12,
      train: {
        preprocess: "decode|central_crop(12)|flip_lr|value_range(-1,1)",
        optimizer: { name: "sgd", lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005 },
        schedule: { kind: "warmup_cosine", warmup_steps: 2 },
        batch_size: 8,
        steps,
        eval_every: 5,
        checkpoint_every: 5,
      },
    },
    student: { arch: "bit-basic:root=4,widths=4-8,units=1-1,strides=2-2", image_size: 12 },
    distill: {
      modes: ["function_matching"],
      preprocess: "decode|inception_crop(12)|flip_lr|value_range(-1,1)",
      temperature: 2,
      optimizer: { name: "adam", lr: 0.01, weight_decay: 0.0001, clip_norm: 1 },
      schedule: { kind: "warmup_cosine", warmup_steps: 2 },
      batch_size: 8,
      steps,
      eval_every: 10,
      checkpoint_every: 5,
      teacher_runtime: "tfjs",
    },
    eval: { preprocess: "decode|central_crop(12)|value_range(-1,1)", batch_size: 8 },
  };
}

function snapshot(params: Map<string, tf.Variable>): Map<string, Float32Array> {
  return new Map([...params].map(([k, v]) => [k, v.dataSync().slice() as Float32Array]));
}

Deno.test("loop: the teacher's loss goes down over 40 steps on real TFRecords", async () => {
  const run = await trainTeacher(config(40), {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-loss`,
    depsHash: "a",
  });
  const losses = run.history.filter((p) => p.loss !== undefined).map((p) => p.loss!);
  const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(tail < head * 0.8, `loss did not fall: first ${head.toFixed(3)}, last ${tail.toFixed(3)}`);
  assert.ok(run.valTop1 >= 0 && run.valTop1 <= 1);
  run.model.dispose();
});

Deno.test("loop: 10 steps, a stop, 10 more from the checkpoint equal 20 steps in one go, bit for bit", async () => {
  const whole = await trainTeacher(config(20), {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-whole`,
    depsHash: "h",
  });
  const a = snapshot(whole.model.params);
  whole.model.dispose();

  const first = await trainTeacher(config(20), {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-split`,
    depsHash: "h",
    stopAfter: 10,
  });
  assert.equal(first.loop.stepsRun, 10);
  first.model.dispose();
  const second = await trainTeacher(config(20), {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-split`,
    depsHash: "h",
  });
  assert.equal(second.loop.resumedFrom, 10);
  assert.equal(second.loop.stepsRun, 10);
  for (const [name, w] of snapshot(second.model.params)) {
    assert.deepEqual(w, a.get(name), `parameter ${name} differs after resume`);
  }
  assert.deepEqual(second.history, whole.history);
  second.model.dispose();
});

Deno.test("loop: a checkpoint made for other deps is not resumed", async () => {
  const first = await trainTeacher(config(10), {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-other`,
    depsHash: "old",
    stopAfter: 5,
  });
  first.model.dispose();
  const second = await trainTeacher(config(10), {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-other`,
    depsHash: "new",
  });
  assert.equal(second.loop.resumedFrom, 0);
  second.model.dispose();
});

Deno.test("loop: no tensor leaks between step 10 and step 100", async () => {
  const counts: number[] = [];
  const cfg = config(100);
  cfg.teacher.train.eval_every = 1000;
  const { trainLoop } = await import("../lib/train/loop.ts");
  const { bitSpec, buildModel } = await import("../lib/model/bit.ts");
  const { makeOptimizer } = await import("../lib/train/recipe.ts");
  const { valueAndGrads } = await import("../lib/train/optim.ts");
  const { xentLoss } = await import("../lib/train/losses.ts");
  const { openData, pipelineFor } = await import("../lib/train/data.ts");
  const { Rng } = await import("../lib/rng.ts");
  const train = await openData(`${root}/tfrecords`, cfg, "train");
  const model = buildModel(bitSpec(cfg.teacher.arch, 3), new Rng(1));
  const opt = makeOptimizer(cfg.teacher.train.optimizer, model.params);
  await trainLoop({
    name: "leak",
    seed: 1,
    steps: 100,
    batchSize: 8,
    evalEvery: 1000,
    checkpointEvery: 1000,
    checkpointDir: `${root}/ck-leak`,
    depsHash: "x",
    params: model.params,
    optimizer: opt,
    lrAt: () => 1,
    openInput: (start) =>
      pipelineFor(train, cfg, {
        batchSize: 8,
        preprocess: "decode|central_crop(12)|value_range(-1,1)",
        seed: 1,
        train: true,
        start,
      }),
    step: (batch, step) => {
      const v = tf.tidy(() => {
        const x = tf.tensor4d(batch.x, batch.shape);
        const { value, grads } = valueAndGrads(model.params, () => xentLoss(model.apply(x), batch.labels));
        opt.step(grads, 1);
        return value;
      });
      const loss = v.dataSync()[0];
      v.dispose();
      if (step === 9 || step === 99) counts.push(tf.memory().numTensors);
      return Promise.resolve(loss);
    },
  });
  assert.equal(counts.length, 2);
  assert.equal(counts[1], counts[0], `live tensors grew from ${counts[0]} to ${counts[1]}`);
  model.dispose();
});

Deno.test("loop: function matching calls the teacher online on every step, on the student's exact input", async () => {
  const cfg = config(6);
  const teacherRun = await trainTeacher(cfg, {
    tfrecords: `${root}/tfrecords`,
    checkpointDir: `${root}/ck-t`,
    depsHash: "t",
  });
  const seen: Float32Array[] = [];
  const teacher = teacherRun.model;
  const spy = {
    ...teacher,
    apply: (x: tf.Tensor4D) => {
      seen.push(x.dataSync().slice() as Float32Array);
      return teacher.apply(x);
    },
    frozen: () => {
      const f = teacher.frozen();
      return {
        apply: (x: tf.Tensor4D) => {
          seen.push(x.dataSync().slice() as Float32Array);
          return f.apply(x);
        },
        dispose: f.dispose,
      };
    },
  };
  const before = seen.length;
  const run = await distillStudent(cfg, "function_matching", {
    tfrecords: `${root}/tfrecords`,
    teacher: spy,
    checkpointDir: `${root}/ck-fm`,
    depsHash: "s",
  });
  // one validation pass (6 images, one batch) + one call per training step
  assert.equal(run.teacherCalls, 6);
  assert.equal(seen.length - before, 1 + 6);
  // the teacher saw exactly the mixed batches the recipe defines: the pipeline's crops, mixed with roll(x, 1)
  const { openData, pipelineFor } = await import("../lib/train/data.ts");
  const { stepRng } = await import("../lib/train/loop.ts");
  const { mixupCoefficient, mixupRoll } = await import("../lib/data/mixup.ts");
  const input = pipelineFor(await openData(`${root}/tfrecords`, cfg, "train"), cfg, {
    batchSize: 8,
    preprocess: cfg.distill.preprocess,
    seed: `${cfg.seed}/distill/data`,
    train: true,
  });
  for (let step = 0; step < 6; step++) {
    const b = (await input.next())!;
    const a = mixupCoefficient(stepRng(cfg.seed, "distill/function_matching", step));
    assert.ok(a >= 0.5 && a <= 1);
    assert.deepEqual(seen[before + 1 + step], mixupRoll(b.x, 8, a), `teacher input of step ${step}`);
  }
  await input.close();
  const losses = run.history.filter((p) => p.loss !== undefined);
  assert.ok(losses.length > 0 && losses.every((p) => Number.isFinite(p.loss)));
  run.model.dispose();
  teacher.dispose();
});

/**
 * Stage 05: the teacher and every student on the test split with the recipe's evaluation preprocessing —
 * accuracy, agreement with the teacher, KL, per-class accuracy, confusion, size, latency and throughput on
 * TF.js and ONNX Runtime — and each student exported as ONNX, checked to give the same answers.
 */
import * as tf from "@tensorflow/tfjs";
import { readJson, runStage, stableJson, writeFileAtomic, writeOutDir } from "../lib/stage/mod.ts";
import { initBackend } from "../lib/backend.ts";
import { openData } from "../lib/train/data.ts";
import { loadModel } from "../lib/stage/models.ts";
import { type Forward, predictSplit } from "../lib/eval/predict.ts";
import { agreement, type M, summarize, top1 } from "../lib/eval/metrics.ts";
import { measureLatency } from "../lib/eval/latency.ts";
import { exportOnnx } from "../lib/export/onnx.ts";
import { createSession, loadOrt, ortLoadError, runLogits } from "../lib/export/ort.ts";
import type { FrozenForward, Model } from "../lib/model/bit.ts";
import type { ModelCard } from "../lib/stage/outputs.ts";

interface Timing {
  latency_ms_b1: number;
  throughput_b64: number;
}

async function timeTfjs(model: FrozenForward, size: number, repeats: number): Promise<Timing> {
  const run = (b: number) => {
    const y = tf.tidy(() => model.apply(tf.zeros([b, size, size, 3]) as tf.Tensor4D));
    y.dataSync();
    y.dispose();
  };
  // enough warm-up that the allocator and caches settle: one untimed batch left the first timed ones ~30 %
  // slow, and a small student loses more of its ratio to that than the teacher does
  const b1 = await measureLatency(run, { batch: 1, warmup: 10, repeats });
  const b64 = await measureLatency(run, {
    batch: 64,
    warmup: 5,
    repeats: Math.max(10, Math.ceil(repeats / 2)),
  });
  return { latency_ms_b1: b1.median_ms, throughput_b64: b64.images_per_s };
}

await runStage("evaluate", async (ctx) => {
  const { config, paths } = ctx;
  const backend = await initBackend({
    backend: config.backend,
    threads: config.threads,
    native: config.native,
  });
  const C = config.num_classes;
  const repeats = config.eval.latency_repeats ?? 20;
  const tCard = await readJson<ModelCard>(`${paths.frozen}/card.json`, "the frozen teacher's card");
  const teacher = await loadModel(`${paths.frozen}/teacher.bin`, tCard.arch, C);
  const modes: string[] = [];
  for await (const e of Deno.readDir(paths.students)) if (e.isDirectory) modes.push(e.name);
  modes.sort();
  if (modes.length === 0) throw new Error(`${paths.students} holds no student (run the distill stage first)`);
  const students = new Map<string, { model: Model; card: ModelCard; onnx: Uint8Array }>();
  for (const mode of modes) {
    const card = await readJson<ModelCard>(
      `${paths.students}/${mode}/card.json`,
      `the ${mode} student's card`,
    );
    const model = await loadModel(`${paths.students}/${mode}/weights.bin`, card.arch, C);
    students.set(mode, {
      model,
      card,
      onnx: exportOnnx(model.spec, model.params, { imageSize: card.image_size }),
    });
  }

  // ONNX Runtime copies of the students answer the same test images, to prove the export keeps accuracy
  const ort = await loadOrt({ quiet: true });
  if (!ort) console.error(`evaluate: ONNX Runtime unavailable (${ortLoadError()}); ONNX figures are skipped`);
  const sessions = new Map<string, Awaited<ReturnType<typeof createSession>>>();
  if (ort) {
    for (const [mode, s] of students) sessions.set(mode, await createSession(s.onnx, { threads: 1 }));
  }

  const test = await openData(paths.tfrecords, config, "test");
  // inference only: every model's kernels are standardised once, not on each batch
  const frozenTeacher = teacher.frozen();
  const frozen = new Map([...students].map(([mode, s]) => [mode, s.model.frozen()]));
  const forwards: Forward[] = [(x) => frozenTeacher.apply(x)];
  for (const f of frozen.values()) forwards.push((x) => f.apply(x));
  for (const session of sessions.values()) {
    forwards.push({ raw: (x, shape) => runLogits(session, x, shape) });
  }
  console.error(`evaluate: ${test.count} test images, teacher + ${modes.length} student(s)`);
  const preds = await predictSplit(forwards, test, config, {
    preprocess: config.eval.preprocess,
    batchSize: config.eval.batch_size ?? 128,
    numClasses: C,
  });
  const [tPred] = preds;

  const size = tCard.image_size;
  const teacherTiming = await timeTfjs(frozenTeacher, size, repeats);
  const teacherBytes = (await Deno.stat(`${paths.frozen}/teacher.bin`)).size;
  const teacherM: M = summarize({
    logits: tPred.logits,
    labels: tPred.labels,
    numClasses: C,
    params: teacher.paramCount(),
    bytes: teacherBytes,
    ...teacherTiming,
  });
  const studentsM: Record<string, M & Record<string, unknown>> = {};
  for (const [i, mode] of modes.entries()) {
    const s = students.get(mode)!;
    const p = preds[1 + i];
    const timing = await timeTfjs(frozen.get(mode)!, s.card.image_size, repeats);
    const m: M & Record<string, unknown> = {
      ...summarize({
        logits: p.logits,
        labels: p.labels,
        numClasses: C,
        teacherLogits: tPred.logits,
        params: s.model.paramCount(),
        bytes: (await Deno.stat(`${paths.students}/${mode}/weights.bin`)).size,
        ...timing,
        teacher: { params: teacher.paramCount(), latency_ms_b1: teacherTiming.latency_ms_b1 },
      }),
    };
    m.throughput_speedup = timing.throughput_b64 / teacherTiming.throughput_b64;
    const session = sessions.get(mode);
    if (session) {
      const o = preds[1 + modes.length + [...sessions.keys()].indexOf(mode)];
      const ortRun = async (b: number) => {
        await runLogits(session, new Float32Array(b * size * size * 3), [b, size, size, 3]);
      };
      const ob1 = await measureLatency(ortRun, { batch: 1, warmup: 3, repeats });
      const ob64 = await measureLatency(ortRun, {
        batch: 64,
        warmup: 1,
        repeats: Math.max(3, Math.ceil(repeats / 4)),
      });
      m.onnx = {
        top1: top1(o.logits, o.labels, C),
        same_top1_as_tfjs: agreement(p.logits, o.logits, C, 1),
        max_abs_logit_diff: maxAbsDiff(p.logits, o.logits),
        latency_ms_b1: ob1.median_ms,
        throughput_b64: ob64.images_per_s,
        bytes: s.onnx.byteLength,
      };
    }
    studentsM[mode] = m;
    console.error(
      `evaluate: ${mode}: top-1 ${(100 * m.top1).toFixed(2)} % (teacher ${
        (100 * teacherM.top1).toFixed(2)
      } %), ` +
        `agreement ${(100 * m.agreement_top1).toFixed(2)} %, ${m.compression?.toFixed(1)}× fewer parameters`,
    );
  }
  for (const s of sessions.values()) await s.release?.();

  await writeOutDir(paths.eval, async (tmp) => {
    for (const [mode, s] of students) await Deno.writeFile(`${tmp}/${mode}.onnx`, s.onnx);
    await writeFileAtomic(
      `${tmp}/metrics.json`,
      stableJson({
        teacher: teacherM,
        students: studentsM,
        test_images: tPred.n,
        backend: {
          name: backend.name,
          threads: backend.threads,
          native: backend.native,
          label: backend.label,
        },
        onnx_runtime: ort ? "onnxruntime-node" : null,
      }, 2) + "\n",
    );
  });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Benchmark: what running the frozen teacher on ONNX Runtime buys a distillation step.
 *
 * Why it exists: DESIGN.md routes the teacher's forward pass through ORT in a Worker on the claim that it
 * makes function matching markedly cheaper on a 2-core CPU; this measures the claim on the cpu profile's
 * models (cifar10's `cpu` profile by default: teacher, student, image size, distill batch): teacher forward img/s
 * on TF.js (frozen weights, as distill runs it) vs ORT (1 thread,
 * in-process and in the Worker), and the time of one distill step (student fwd + bwd + Adam on TF.js with the
 * KD loss) with the teacher on each runtime. It also exports the trained-for-a-few-steps student and checks
 * that ORT predicts what TF.js predicts on real CIFAR-10 test images (when the shared data set is present).
 *
 * Run alone: `deno run -A bench/onnx.ts` (prints the markdown); bench/main.ts calls `benchOnnx()`.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { resolveConfig } from "../lib/config/mod.ts";
import { bitSpec, buildModel, flops, type Model } from "../lib/model/bit.ts";
import { Rng } from "../lib/rng.ts";
import { Adam, valueAndGrads } from "../lib/train/optim.ts";
import { kdLoss } from "../lib/train/losses.ts";
import { exportOnnx } from "../lib/export/onnx.ts";
import { createSession, loadOrt, ortLoadError, runLogits } from "../lib/export/ort.ts";
import { createTeacherRuntime, type TeacherRuntime } from "../lib/export/teacher_runtime.ts";
import { agreement, top1 } from "../lib/eval/metrics.ts";
import { readTFRecords } from "../lib/data/tfrecord.ts";
import { decodeExample } from "../lib/data/example.ts";
import { decodeImage } from "../lib/data/decode.ts";

/** The shared real datasets beside the checkout; FUNMATCH_SHARED_DATASETS overrides. */
const SHARED = Deno.env.get("FUNMATCH_SHARED_DATASETS") ??
  new URL("../../shared/datasets", import.meta.url).pathname.replace(/\/$/, "");

/** Options of {@link benchOnnx}; the defaults are the cpu profile's models and batch. */
export interface BenchOnnxOptions {
  teacher?: string;
  student?: string;
  imageSize?: number;
  batch?: number;
  numClasses?: number;
  /** interleaved rounds (default 4) × timed steps per round (default 3), after `warmup` untimed steps per
   * round (default 1). */
  rounds?: number;
  perRound?: number;
  warmup?: number;
  /** CIFAR-10 test shard for the exported-student check (skipped if missing). */
  testShard?: string;
}

/** One measurement. */
export interface BenchRow {
  what: string;
  runtime: string;
  /** median milliseconds per batch / step. */
  ms: number;
  /** min–max over the timed repetitions. */
  msMin: number;
  msMax: number;
  imgPerS: number;
  batch: number;
  reps: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One thing to time: `step` per repetition; `begin`/`end` (untimed) bracket each round. */
interface Variant {
  what: string;
  runtime: string;
  begin?: () => Promise<void>;
  step: (i: number) => Promise<void> | void;
  end?: () => Promise<void>;
}

/**
 * Time the variants in interleaved rounds (order rotated every round), so the slow and fast phases of a
 * shared machine hit every variant alike. Each round: begin, `warmup` untimed steps, `perRound` timed steps,
 * end. Returns the per-step times of each variant.
 */
async function interleaved(variants: Variant[], rounds: number, perRound: number, warmup: number) {
  const times = variants.map(() => [] as number[]);
  let i = 0;
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < variants.length; j++) {
      const v = (j + r) % variants.length;
      await variants[v].begin?.();
      for (let w = 0; w < warmup; w++) await variants[v].step(i++);
      for (let k = 0; k < perRound; k++) {
        const t0 = performance.now();
        await variants[v].step(i++);
        times[v].push(performance.now() - t0);
      }
      await variants[v].end?.();
    }
  }
  return times;
}

function row(what: string, runtime: string, times: number[], batch: number): BenchRow {
  const ms = median(times);
  return {
    what,
    runtime,
    ms,
    msMin: Math.min(...times),
    msMax: Math.max(...times),
    imgPerS: (1000 * batch) / ms,
    batch,
    reps: times.length,
  };
}

/** Random conv kernels (buildModel) plus non-trivial GN affine and head, like a trained net's. */
function randomized(name: string, classes: number, seed: string): Model {
  const rng = new Rng(seed);
  const m = buildModel(bitSpec(name, classes), rng.fork("init"));
  const r = rng.fork("affine");
  for (const [n, v] of m.params) {
    if (!n.endsWith("/scale") && !n.endsWith("/bias") && n !== "head/kernel") continue;
    const base = n.endsWith("/scale") ? 1 : 0;
    v.assign(tf.tensor(new Float32Array(v.size).map(() => base + 0.3 * r.normal()), v.shape));
  }
  return m;
}

async function cifarBatch(path: string, n: number): Promise<{ x: Float32Array; labels: Int32Array } | null> {
  try {
    await Deno.stat(path);
  } catch {
    return null;
  }
  const x = new Float32Array(n * 32 * 32 * 3);
  const labels = new Int32Array(n);
  let i = 0;
  for await (const rec of readTFRecords(path)) {
    const ex = decodeExample(rec.data, { image: "image", label: "class" }, `${path} @ ${rec.offset}`);
    const img = await decodeImage(ex.image, `${path} @ ${rec.offset}`);
    for (let k = 0; k < img.data.length; k++) x[i * 3072 + k] = img.data[k] / 127.5 - 1;
    labels[i] = ex.label;
    if (++i === n) break;
  }
  return i === n ? { x, labels } : null;
}

/**
 * Run the benchmark (about 20–40 s on a quiet 2-core machine). Returns a markdown section and the rows.
 * Uses TF.js wasm with 1 thread when the process has not chosen a backend yet (otherwise the current one).
 */
export async function benchOnnx(opts: BenchOnnxOptions = {}): Promise<{ markdown: string; rows: object[] }> {
  // deno-lint-ignore no-explicit-any
  const cpu = (await resolveConfig({ dataset: "cifar10", profile: "cpu" })).config as any;
  const teacherName = opts.teacher ?? cpu.teacher.arch;
  const studentName = opts.student ?? cpu.student.arch;
  const size = opts.imageSize ?? cpu.student.image_size;
  const B = opts.batch ?? cpu.distill.batch_size;
  const C = opts.numClasses ?? cpu.num_classes;
  const rounds = opts.rounds ?? 4;
  const perRound = opts.perRound ?? 3;
  const warmup = opts.warmup ?? 1;
  const shape: [number, number, number, number] = [B, size, size, 3];
  const notes: string[] = [];

  let backend: string;
  try {
    const info = await initBackend({ backend: "wasm", threads: 1, native: cpu.native, quiet: true });
    backend = info.label;
  } catch (e) {
    backend = `${tf.getBackend()} (already initialised)`;
    notes.push(`TF.js backend was already chosen by the caller: ${(e as Error).message}`);
  }
  const ort = await loadOrt({ quiet: true });
  const loadBefore = Deno.loadavg()[0];

  const teacher = randomized(teacherName, C, "bench/onnx/teacher");
  const frozenTeacher = teacher.frozen();
  const onnxBytes = exportOnnx(teacher.spec, teacher.params, { imageSize: size });
  const rng = new Rng("bench/onnx/x");
  const batches = [0, 1, 2].map(() => new Float32Array(B * size * size * 3).map(() => rng.normal()));
  const rows: BenchRow[] = [];
  /** Overlapped variant: how long each step waited for the Worker's logits (0 = the teacher was hidden). */
  const waits: number[] = [];

  const pick = (i: number) => batches[i % batches.length];
  const session = ort ? await createSession(onnxBytes, { threads: 1 }) : null;
  const worker: TeacherRuntime | null = ort
    ? await createTeacherRuntime({ runtime: "onnx", onnxBytes })
    : null;
  if (!ort) notes.push(`ORT rows skipped: ${ortLoadError()}`);

  // 1. Teacher forward.
  const tfTeacher = (x: Float32Array) => {
    const y = tf.tidy(() => frozenTeacher.apply(tf.tensor4d(x, shape)));
    const d = y.dataSync() as Float32Array;
    y.dispose();
    return d;
  };
  const fwd: Variant[] = [{
    what: "teacher forward",
    runtime: `TF.js ${backend}`,
    step: (i) => void tfTeacher(pick(i)),
  }];
  if (session && worker) {
    fwd.push({
      what: "teacher forward",
      runtime: "ORT 1T in-process",
      step: async (i) => void await runLogits(session, pick(i), shape),
    });
    fwd.push({
      what: "teacher forward",
      runtime: "ORT 1T Worker",
      step: async (i) => void await worker.submit(pick(i).slice(), shape),
    });
  }

  // 2. Distill step: student fwd + bwd + Adam on TF.js against the teacher's logits.
  const student = buildModel(bitSpec(studentName, C), new Rng("bench/onnx/student"));
  const optimizer = new Adam(student.params, { lr: 1e-3, wd: 1e-4 });
  const trainStep = (x: Float32Array, tLogits: Float32Array) => {
    const loss = tf.tidy(() => {
      const xt = tf.tensor4d(x, shape);
      const t = tf.tensor2d(tLogits, [B, C]);
      const { value, grads } = valueAndGrads(student.params, () => kdLoss(t, student.apply(xt), 2));
      optimizer.step(grads, 1);
      return value;
    });
    loss.dataSync();
    loss.dispose();
  };
  const fixedLogits = tfTeacher(batches[0]);
  const steps: Variant[] = [
    { what: "student step alone", runtime: "TF.js", step: (i) => trainStep(pick(i), fixedLogits) },
    {
      what: "distill step",
      runtime: "teacher on TF.js (serial)",
      step: (i) => trainStep(pick(i), tfTeacher(pick(i))),
    },
  ];
  if (session && worker) {
    steps.push({
      what: "distill step",
      runtime: "teacher on ORT 1T in-process (serial)",
      step: async (i) => trainStep(pick(i), await runLogits(session, pick(i), shape)),
    });
    // Pipelined as in lib/train/distill.ts: batch k+1 goes to the Worker before the student trains on batch k.
    // Each round starts with an untimed step (the pipeline fills) and drains at the end, so no teacher work
    // leaks into another variant's timing.
    let pending: Promise<Float32Array> | null = null;
    steps.push({
      what: "distill step",
      runtime: "teacher on ORT 1T Worker (overlapped)",
      begin: () => {
        pending = null;
        return Promise.resolve();
      },
      step: async (i) => {
        const t0 = performance.now();
        const tLogits = await (pending ?? worker.submit(pick(i).slice(), shape));
        if (pending) waits.push(performance.now() - t0);
        pending = worker.submit(pick(i + 1).slice(), shape);
        trainStep(pick(i), tLogits);
      },
      end: async () => void await pending,
    });
  }
  for (const group of [fwd, steps]) {
    const times = await interleaved(group, rounds, perRound, warmup);
    group.forEach((v, j) => rows.push(row(v.what, v.runtime, times[j], B)));
  }
  await session?.release();

  // 3. The (briefly trained) student exported to ONNX predicts what TF.js predicts.
  let exportCheck = "";
  if (ort) {
    const test = await cifarBatch(
      opts.testShard ?? `${SHARED}/cifar10/test/test_cifar10-0-5000.tfrec`,
      256,
    );
    const n = test ? 256 : B;
    const x = test?.x ?? batches[1];
    const sShape: [number, number, number, number] = [n, size, size, 3];
    const tfl = tf.tidy(() => student.apply(tf.tensor4d(x, sShape))).dataSync() as Float32Array;
    const sSession = await createSession(exportOnnx(student.spec, student.params, { imageSize: size }));
    const onl = await runLogits(sSession, x, sShape);
    await sSession.release();
    let d = 0;
    for (let i = 0; i < tfl.length; i++) d = Math.max(d, Math.abs(tfl[i] - onl[i]));
    const agree = agreement(tfl, onl, C, 1);
    exportCheck = `Student ${studentName} after ${optimizer.steps} Adam steps, exported to ONNX, on ${n} ` +
      (test ? "CIFAR-10 test images" : "random inputs") +
      `: top-1 agreement TF.js vs ORT ${(100 * agree).toFixed(1)}%, ` +
      `max |Δlogit| ${d.toExponential(1)}` +
      (test
        ? `, top-1 ${(100 * top1(tfl, test.labels, C)).toFixed(1)}% (TF.js) vs ${
          (100 * top1(onl, test.labels, C)).toFixed(1)
        }% (ORT)`
        : "") +
      ".";
  }
  worker?.close();
  teacher.dispose();
  student.dispose();
  optimizer.dispose();

  const get = (what: string, rt: string) => rows.find((r) => r.what === what && r.runtime.startsWith(rt));
  const tfStep = get("distill step", "teacher on TF.js");
  const wStep = get("distill step", "teacher on ORT 1T Worker");
  const tfFwd = get("teacher forward", "TF.js");
  const ortFwd = get("teacher forward", "ORT 1T in-process");
  const lines = [
    `### Teacher on ONNX Runtime (${teacherName} → ${studentName}, ${size}×${size}, batch ${B})`,
    "",
    `TF.js backend: ${backend}. Teacher ${(flops(teacher.spec, size) / 1e6).toFixed(2)} MFLOP/img, student ${
      (flops(student.spec, size) / 1e6).toFixed(2)
    } MFLOP/img. Median of ${rounds} interleaved rounds × ${perRound} timed runs (each round after ${warmup} untimed); min–max in brackets.`,
    "",
    "| measurement | runtime | ms / batch | img/s |",
    "|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.what} | ${r.runtime} | ${r.ms.toFixed(1)} [${r.msMin.toFixed(1)}–${r.msMax.toFixed(1)}] | ${
        r.imgPerS.toFixed(0)
      } |`
    ),
    "",
  ];
  if (tfFwd && ortFwd) {
    lines.push(`- Teacher forward: ORT 1T is ${(tfFwd.ms / ortFwd.ms).toFixed(2)}× TF.js.`);
  }
  if (tfStep && wStep) {
    const speedup = tfStep.ms / wStep.ms;
    lines.push(
      `- Distill step: teacher on the ORT Worker is ${
        speedup.toFixed(2)
      }× faster than the teacher on TF.js ` +
        `(target ≥ 1.5×: ${speedup >= 1.5 ? "met" : "not met"}).`,
    );
  }
  if (waits.length > 0) {
    lines.push(
      `- Overlapped steps waited ${median(waits).toFixed(1)} ms (median; max ${
        Math.max(...waits).toFixed(1)
      }) for the Worker's logits; any gap to "student step alone" is CPU contention, not waiting.`,
    );
  }
  if (exportCheck) lines.push(`- ${exportCheck}`);
  lines.push(
    `- 1-min load average ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after ` +
      `(${navigator.hardwareConcurrency} cores; overlap needs the second core free).`,
  );
  for (const n of notes) lines.push(`- ${n}`);
  return { markdown: lines.join("\n") + "\n", rows };
}

if (import.meta.main) {
  const { markdown, rows } = await benchOnnx();
  console.log(markdown);
  if (Deno.args.includes("--json")) console.log(JSON.stringify(rows, null, 2));
}

/**
 * Stage 04's trainer: one student per mode, all from the same initialisation, data order and budget.
 *
 * - `function_matching`: the teacher answers online on the identical mixed-up inception crop the student
 *   sees (no labels). This is the recipe.
 * - `consistent`: the same crop for both, no mixup.
 * - `fixed_teacher`: the teacher's answers precomputed once on centre crops; each answer is looked up by
 *   the record id the batch carries, so it stays attached to its image through shuffling. Mixed targets
 *   follow the mixed images.
 * - `labels`: the same student, crops and mixup, trained on (mixed) one-hot labels — the honest baseline.
 */
import * as tf from "@tensorflow/tfjs";
import { bitSpec, buildModel, type Model } from "../model/bit.ts";
import { Rng } from "../rng.ts";
import { valueAndGrads } from "./optim.ts";
import { kdLoss } from "./losses.ts";
import { makeOptimizer, makeSchedule } from "./recipe.ts";
import { type HistoryPoint, stepRng, trainLoop, type TrainLoopResult } from "./loop.ts";
import { openData, type SplitData } from "./data.ts";
import { pipelineFor } from "./data.ts";
import { predictSplit } from "../eval/predict.ts";
import { agreement, top1 } from "../eval/metrics.ts";
import { mixupCoefficient, mixupRoll } from "../data/mixup.ts";
import { createTeacherRuntime, type TeacherRuntime } from "../export/teacher_runtime.ts";
import type { Batch } from "../data/pipeline.ts";
import type { Config } from "../config/mod.ts";

export type Mode = "function_matching" | "consistent" | "fixed_teacher" | "labels";

export interface StudentRun {
  mode: Mode;
  model: Model;
  history: HistoryPoint[];
  loop: TrainLoopResult;
  teacherRuntime: string;
  /** Teacher forward passes made during training (0 for fixed_teacher after its precompute, and labels). */
  teacherCalls: number;
}

export interface DistillOptions {
  tfrecords: string;
  teacher: Model;
  /** The exported teacher, for the ONNX Runtime path. */
  onnxTeacher?: Uint8Array;
  checkpointDir: string;
  depsHash: string;
  logFile?: string;
  stopAfter?: number;
}

/** Soft cross-entropy form of T²·KL(q ‖ softmax(s/T)) against given target probabilities q. */
export function softTargetLoss(q: tf.Tensor2D, studentLogits: tf.Tensor2D, T: number): tf.Scalar {
  return tf.tidy(() => {
    const logS = tf.logSoftmax(tf.div(studentLogits, T));
    const logQ = tf.log(tf.maximum(q, 1e-8));
    const kl = tf.sum(tf.mul(q, tf.sub(logQ, logS)), 1);
    return tf.mul(tf.mean(kl), T * T) as tf.Scalar;
  });
}

/** Row i of the result = a·p_i + (1−a)·p_{i−1} (roll by one, like the images). */
function mixRows(p: tf.Tensor2D, a: number): tf.Tensor2D {
  return tf.tidy(() => {
    const n = p.shape[0];
    if (n < 2 || a === 1) return p.clone();
    const rolled = tf.concat([tf.slice(p, [n - 1, 0], [1, -1]), tf.slice(p, [0, 0], [n - 1, -1])], 0);
    return tf.add(tf.mul(p, a), tf.mul(rolled, 1 - a)) as tf.Tensor2D;
  });
}

/** Train the student of one mode. */
export async function distillStudent(config: Config, mode: Mode, o: DistillOptions): Promise<StudentRun> {
  const d = config.distill;
  const C = config.num_classes;
  const T = d.temperature;
  const train = await openData(o.tfrecords, config, "train");
  const val = await openData(o.tfrecords, config, "validation");
  const student = buildModel(bitSpec(config.student.arch, C), new Rng(`${config.seed}/student/init`));
  const optimizer = makeOptimizer(d.optimizer, student.params);
  const sched = makeSchedule(d.schedule, d.steps);
  const name = `distill/${mode}`;
  const useMixup = mode !== "consistent";
  const online = mode === "function_matching" || mode === "consistent";

  // the teacher never changes: its kernels are standardised once for the whole run
  const frozenTeacher = o.teacher.frozen();
  const teacherApply = (x: tf.Tensor4D) => frozenTeacher.apply(x);
  const runtime: TeacherRuntime | null = online
    ? await createTeacherRuntime({
      runtime: d.teacher_runtime ?? "auto",
      onnxBytes: o.onnxTeacher,
      tfjsApply: teacherApply,
    })
    : null;
  let teacherCalls = 0;

  // fixed_teacher: one answer per training record, indexed by record id
  let fixed: { probs: Float32Array; byId: Map<number, number> } | null = null;
  if (mode === "fixed_teacher") fixed = await precomputeTeacher(teacherApply, train, config, T);

  // the teacher's validation answers never change: compute them once
  const [valTeacher] = await predictSplit([teacherApply], val, config, {
    preprocess: config.eval.preprocess,
    batchSize: config.eval.batch_size ?? 128,
    numClasses: C,
  });

  // mixed batches (and the teacher's pending answers) prepared one step ahead
  const prepared = new Map<number, { x: Float32Array; a: number; teacher?: Promise<Float32Array> }>();
  const prepare = (batch: Batch, step: number) => {
    if (prepared.has(step)) return prepared.get(step)!;
    const rng = stepRng(config.seed, name, step);
    const a = useMixup ? mixupCoefficient(rng) : 1;
    const x = useMixup ? mixupRoll(batch.x, batch.shape[0], a) : batch.x;
    const entry: { x: Float32Array; a: number; teacher?: Promise<Float32Array> } = { x, a };
    if (runtime) {
      teacherCalls++;
      entry.teacher = runtime.submit(x.slice(), batch.shape);
    }
    prepared.set(step, entry);
    return entry;
  };

  try {
    const loop = await trainLoop({
      name,
      seed: config.seed,
      steps: d.steps,
      batchSize: d.batch_size,
      evalEvery: d.eval_every ?? d.steps,
      checkpointEvery: d.checkpoint_every ?? 100,
      checkpointDir: `${o.checkpointDir}/${mode}`,
      depsHash: o.depsHash,
      logFile: o.logFile,
      params: student.params,
      optimizer,
      lrAt: (s) => d.optimizer.lr * sched(s),
      openInput: (start) =>
        pipelineFor(train, config, {
          batchSize: d.batch_size,
          preprocess: d.preprocess,
          seed: `${config.seed}/distill/data`,
          train: true,
          start,
        }),
      lookahead: (batch, step) => void prepare(batch, step),
      step: async (batch, step) => {
        const p = prepare(batch, step);
        prepared.delete(step);
        const B = batch.shape[0];
        const tLogits = p.teacher ? await p.teacher : null;
        const loss = tf.tidy(() => {
          const x = tf.tensor4d(p.x, batch.shape);
          let target: tf.Tensor2D;
          if (tLogits) target = tf.tensor2d(tLogits, [B, C]);
          else if (fixed) {
            const rows = new Float32Array(B * C);
            for (let i = 0; i < B; i++) {
              const at = fixed.byId.get(batch.ids[i]);
              if (at === undefined) {
                throw new Error(`no precomputed teacher answer for record ${batch.ids[i]}`);
              }
              rows.set(fixed.probs.subarray(at * C, at * C + C), i * C);
            }
            target = mixRows(tf.tensor2d(rows, [B, C]), p.a);
          } else {target = mixRows(
              tf.oneHot(tf.tensor1d(batch.labels, "int32"), C).toFloat() as tf.Tensor2D,
              p.a,
            );}
          const { value, grads } = valueAndGrads(student.params, () => {
            const s = student.apply(x);
            if (tLogits) return kdLoss(target, s, T);
            if (fixed) return softTargetLoss(target, s, T);
            return softTargetLoss(target, s, 1);
          });
          optimizer.step(grads, sched(step));
          return value;
        });
        const v = loss.dataSync()[0];
        loss.dispose();
        return v;
      },
      evaluate: async () => {
        const frozen = student.frozen();
        const [s] = await predictSplit([(x) => frozen.apply(x)], val, config, {
          preprocess: config.eval.preprocess,
          batchSize: config.eval.batch_size ?? 128,
          numClasses: C,
        }).finally(() => frozen.dispose());
        return {
          top1: top1(s.logits, s.labels, C),
          agreement: agreement(valTeacher.logits, s.logits, C, 1),
        };
      },
      stopAfter: o.stopAfter,
    });
    return {
      mode,
      model: student,
      history: loop.history,
      loop,
      teacherRuntime: runtime?.name ?? "none",
      teacherCalls,
    };
  } finally {
    runtime?.close();
    frozenTeacher.dispose();
  }
}

/** The teacher's softened answers on centre crops of every training record, keyed by record id. */
async function precomputeTeacher(
  teacher: (x: tf.Tensor4D) => tf.Tensor2D,
  train: SplitData,
  config: Config,
  T: number,
): Promise<{ probs: Float32Array; byId: Map<number, number> }> {
  const [p] = await predictSplit([teacher], train, config, {
    preprocess: config.eval.preprocess,
    batchSize: config.eval.batch_size ?? 128,
    numClasses: config.num_classes,
  });
  const probs = tf.tidy(() => tf.softmax(tf.div(tf.tensor2d(p.logits, [p.n, p.numClasses]), T)).dataSync());
  const byId = new Map<number, number>();
  p.ids.forEach((id, row) => byId.set(id, row));
  return { probs: probs as Float32Array, byId };
}

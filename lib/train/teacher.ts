/**
 * Supervised training of the teacher on labels (stage 02). The recipe (optimizer, schedule, augmentation,
 * steps) comes entirely from the config's `teacher.train` block; this file only wires it to the loop.
 */
import * as tf from "@tensorflow/tfjs";
import { bitSpec, buildModel, type Model } from "../model/bit.ts";
import { Rng } from "../rng.ts";
import { valueAndGrads } from "./optim.ts";
import { xentLoss } from "./losses.ts";
import { makeOptimizer, makeSchedule } from "./recipe.ts";
import { type HistoryPoint, trainLoop, type TrainLoopResult } from "./loop.ts";
import { openData, pipelineFor, type SplitData } from "./data.ts";
import { predictSplit } from "../eval/predict.ts";
import { top1 } from "../eval/metrics.ts";
import type { Config } from "../config/mod.ts";

export interface TeacherRun {
  model: Model;
  history: HistoryPoint[];
  valTop1: number;
  loop: TrainLoopResult;
}

/** Top-1 of `model` on `data` with the evaluation preprocessing. */
export async function validationTop1(model: Model, data: SplitData, config: Config): Promise<number> {
  const frozen = model.frozen();
  try {
    const [p] = await predictSplit([(x) => frozen.apply(x)], data, config, {
      preprocess: config.eval.preprocess,
      batchSize: config.eval.batch_size ?? 128,
      numClasses: config.num_classes,
    });
    return top1(p.logits, p.labels, p.numClasses);
  } finally {
    frozen.dispose();
  }
}

/** Train the teacher described by `config.teacher`, resuming from `checkpointDir` when it can. */
export async function trainTeacher(
  config: Config,
  o: { tfrecords: string; checkpointDir: string; depsHash: string; logFile?: string; stopAfter?: number },
): Promise<TeacherRun> {
  const t = config.teacher;
  const tr = t.train;
  const train = await openData(o.tfrecords, config, "train");
  const val = await openData(o.tfrecords, config, "validation");
  const model = buildModel(bitSpec(t.arch, config.num_classes), new Rng(`${config.seed}/teacher/init`));
  const optimizer = makeOptimizer(tr.optimizer, model.params);
  const sched = makeSchedule(tr.schedule, tr.steps);
  const loop = await trainLoop({
    name: "teacher",
    seed: config.seed,
    steps: tr.steps,
    batchSize: tr.batch_size,
    evalEvery: tr.eval_every ?? tr.steps,
    checkpointEvery: tr.checkpoint_every ?? 100,
    checkpointDir: o.checkpointDir,
    depsHash: o.depsHash,
    logFile: o.logFile,
    params: model.params,
    optimizer,
    lrAt: (s) => tr.optimizer.lr * sched(s),
    openInput: (start) =>
      pipelineFor(train, config, {
        batchSize: tr.batch_size,
        preprocess: tr.preprocess,
        seed: `${config.seed}/teacher/data`,
        train: true,
        start,
      }),
    step: (batch, step) => {
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(batch.x, batch.shape);
        const { value, grads } = valueAndGrads(model.params, () => xentLoss(model.apply(x), batch.labels));
        optimizer.step(grads, sched(step));
        return value;
      });
      const v = loss.dataSync()[0];
      loss.dispose();
      return Promise.resolve(v);
    },
    evaluate: async () => ({ top1: await validationTop1(model, val, config) }),
    stopAfter: o.stopAfter,
  });
  const last = [...loop.history].reverse().find((p) => p.val_top1 !== undefined);
  return { model, history: loop.history, valTop1: last?.val_top1 ?? NaN, loop };
}

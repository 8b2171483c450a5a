/**
 * The one training loop every trainer (teacher, each distillation mode) runs: steps, progress, periodic
 * evaluation, checkpoints, and exact resume. What a step *does* is the caller's; what makes a long run
 * survivable lives here once.
 *
 * Exact resume holds because nothing in a step depends on hidden state: data order comes from the input
 * pipeline's (epoch, position), per-step randomness from `stepRng(seed, step)`, and the optimizer's moments
 * are saved bit for bit.
 */
import * as tf from "@tensorflow/tfjs";
import { hashSeed, Rng } from "../rng.ts";
import { Progress } from "../progress.ts";
import type { Batch, InputPipeline, InputState } from "../data/pipeline.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";

/** One point of a training curve. No wall-clock values: the history is part of a stage's out and must be
 * identical when the same run is repeated. */
export interface HistoryPoint {
  step: number;
  loss?: number;
  lr?: number;
  val_top1?: number;
  val_agreement?: number;
}

/** What an optimizer must offer the loop. */
export interface LoopOptimizer {
  state(): Map<string, tf.Tensor>;
  restore(state: Map<string, tf.Tensor | { shape: number[]; data: Float32Array }>): void;
}

export interface TrainLoopOptions {
  /** "teacher", "distill/function_matching": names the progress line and the checkpoint. */
  name: string;
  seed: number;
  steps: number;
  batchSize: number;
  evalEvery: number;
  checkpointEvery: number;
  checkpointDir: string;
  depsHash: string;
  logFile?: string;
  params: Map<string, tf.Variable>;
  optimizer: LoopOptimizer;
  /** The schedule's multiplier at `step` (0-based), for the progress line and the history. */
  lrAt: (step: number) => number;
  /** A fresh input pipeline starting at `start` (or the beginning). */
  openInput: (start?: InputState) => InputPipeline;
  /** One optimisation step on `batch`; returns the loss. `rng` is this step's own stream. */
  step: (batch: Batch, step: number, rng: Rng) => Promise<number>;
  /** Validation metrics at `step` (after that many updates). */
  evaluate?: (step: number) => Promise<{ top1?: number; agreement?: number }>;
  /** Called with each batch before it is trained on, so a caller can start work for it early. */
  lookahead?: (batch: Batch, step: number) => void;
  /** Stop after this many steps in this process (tests use it to simulate a crash). */
  stopAfter?: number;
}

export interface TrainLoopResult {
  history: HistoryPoint[];
  resumedFrom: number;
  stepsRun: number;
  seconds: number;
  imagesPerSecond: number;
  peakRssBytes: number;
  interrupted: boolean;
}

/** The random stream of one training step, independent of every other step's. */
export function stepRng(seed: number, name: string, step: number): Rng {
  return new Rng(hashSeed(seed, name, step));
}

/** Points on the loss curve: about 100 per run, so the history stays small for long schedules. */
function lossEvery(steps: number): number {
  return Math.max(1, Math.floor(steps / 100));
}

/** Run (or resume) a training loop to `steps`. */
export async function trainLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  let start = 0;
  let history: HistoryPoint[] = [];
  let inputState: InputState | undefined;
  const progress = new Progress({ label: o.name, total: o.steps, unit: "step", logFile: o.logFile });
  const ckpt = await loadCheckpoint(o.checkpointDir);
  if (ckpt && ckpt.depsHash === o.depsHash && ckpt.step <= o.steps) {
    for (const [name, v] of o.params) {
      const saved = ckpt.params.get(name);
      if (!saved) throw new Error(`checkpoint ${o.checkpointDir} has no parameter ${name}`);
      tf.tidy(() => v.assign(tf.tensor(saved.data, saved.shape)));
    }
    o.optimizer.restore(ckpt.optState);
    start = ckpt.step;
    inputState = ckpt.input as InputState;
    history = (ckpt.extra as { history?: HistoryPoint[] }).history ?? [];
    progress.log(`${o.name}: resuming from the checkpoint at step ${start} of ${o.steps}`);
  } else if (ckpt) {
    progress.log(
      `${o.name}: ignoring the checkpoint in ${o.checkpointDir}: it was made for other code, data or params`,
    );
  }

  let interrupted = false;
  const onSigint = () => interrupted = true;
  try {
    Deno.addSignalListener("SIGINT", onSigint);
    Deno.addSignalListener("SIGTERM", onSigint);
  } catch { /* signals unsupported: a kill loses at most checkpoint_every steps */ }

  const input = o.openInput(inputState);
  const every = lossEvery(o.steps);
  let lossSum = 0;
  let lossCount = 0;
  let peakRss = Deno.memoryUsage().rss;
  const t0 = performance.now();
  let step = start;
  // the input state to resume from: the position just after the batch of the last finished step
  let resumeState: InputState | undefined = inputState;
  const save = async () => {
    await saveCheckpoint(o.checkpointDir, {
      step,
      params: o.params,
      optState: o.optimizer.state(),
      rng: [],
      input: resumeState ?? input.state(),
      extra: { history },
      depsHash: o.depsHash,
    });
  };
  try {
    let batch = await input.next();
    if (batch && o.lookahead) o.lookahead(batch, step);
    while (step < o.steps) {
      if (!batch) throw new Error(`${o.name}: the input pipeline ended at step ${step}`);
      const afterBatch = input.state();
      // fetched before the step so a caller can start the next batch's work (the teacher) early
      const nextBatch = step + 1 < o.steps ? await input.next() : null;
      if (nextBatch && o.lookahead) o.lookahead(nextBatch, step + 1);
      const loss = await o.step(batch, step, stepRng(o.seed, o.name, step));
      resumeState = afterBatch;
      batch = nextBatch;
      if (!Number.isFinite(loss)) throw new Error(`${o.name}: the loss became ${loss} at step ${step}`);
      lossSum += loss;
      lossCount++;
      step++;
      if (step % every === 0 || step === o.steps) {
        history.push({ step, loss: round(lossSum / lossCount), lr: round(o.lrAt(step - 1)) });
        lossSum = 0;
        lossCount = 0;
      }
      if (o.evaluate && (step % o.evalEvery === 0 || step === o.steps)) {
        const m = await o.evaluate(step);
        const point: HistoryPoint = { step };
        if (m.top1 !== undefined) point.val_top1 = round(m.top1);
        if (m.agreement !== undefined) point.val_agreement = round(m.agreement);
        history.push(point);
        progress.log(
          `${o.name}: step ${step}: validation top-1 ${fmtPct(m.top1)}` +
            (m.agreement !== undefined ? `, agreement ${fmtPct(m.agreement)}` : ""),
        );
      }
      const elapsed = (performance.now() - t0) / 1000;
      peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
      progress.tick(1, {
        loss: loss.toFixed(4),
        "img/s": ((step - start) * o.batchSize / elapsed).toFixed(0),
        lr: o.lrAt(step - 1).toExponential(2),
      });
      if (step < o.steps && (step % o.checkpointEvery === 0 || interrupted)) await save();
      if (interrupted || (o.stopAfter !== undefined && step - start >= o.stopAfter)) break;
    }
  } finally {
    await input.close();
    try {
      Deno.removeSignalListener("SIGINT", onSigint);
      Deno.removeSignalListener("SIGTERM", onSigint);
    } catch { /* see above */ }
  }
  const seconds = (performance.now() - t0) / 1000;
  const imagesPerSecond = (step - start) * o.batchSize / Math.max(seconds, 1e-9);
  if (interrupted) {
    progress.log(`${o.name}: interrupted at step ${step}; the checkpoint is saved, rerun to resume`);
  } else {
    progress.done({
      steps: step - start,
      "img/s": imagesPerSecond.toFixed(0),
      "peak RSS": `${(peakRss / 2 ** 20).toFixed(0)} MiB`,
    });
  }
  return {
    history,
    resumedFrom: start,
    stepsRun: step - start,
    seconds,
    imagesPerSecond,
    peakRssBytes: peakRss,
    interrupted,
  };
}

/** Delete a finished loop's checkpoint, so `--force` starts from scratch. */
export async function clearCheckpoint(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}

function fmtPct(x: number | undefined): string {
  return x === undefined ? "n/a" : `${(100 * x).toFixed(2)} %`;
}

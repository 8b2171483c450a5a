/**
 * Turns the config's `optimizer:` and `schedule:` blocks into the optimizer and schedule objects, so the
 * teacher and every distillation mode read a recipe the same way.
 */
import type * as tf from "@tensorflow/tfjs";
import { Adam, SgdMomentum } from "./optim.ts";
import { piecewise, warmupCosine } from "./schedule.ts";
import type { Config } from "../config/mod.ts";

export type Optimizer = Adam | SgdMomentum;

/** The optimizer a config block describes, over `params`. */
export function makeOptimizer(block: Config, params: Map<string, tf.Variable>): Optimizer {
  if (block.name === "adam") {
    return new Adam(params, { lr: block.lr, wd: block.weight_decay ?? 0, clipNorm: block.clip_norm ?? null });
  }
  if (block.name === "sgd") {
    return new SgdMomentum(params, {
      lr: block.lr,
      momentum: block.momentum ?? 0.9,
      nesterov: block.nesterov ?? false,
      wd: block.weight_decay ?? 0,
      clipNorm: block.clip_norm ?? null,
    });
  }
  throw new Error(`optimizer.name: expected adam or sgd, got ${JSON.stringify(block.name)}`);
}

/** The schedule multiplier as a function of the 0-based step. */
export function makeSchedule(block: Config | undefined, steps: number): (step: number) => number {
  const kind = block?.kind ?? "warmup_cosine";
  if (kind === "constant") return () => 1;
  if (kind === "piecewise") {
    const f = piecewise(block!.boundaries ?? [], block!.values ?? [1]);
    return (s) => f(s);
  }
  const warmup = block?.warmup_steps ?? Math.round((block?.warmup_fraction ?? 0) * steps);
  return (s) => warmupCosine(s, steps, Math.min(warmup, steps));
}

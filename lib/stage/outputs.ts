/**
 * The small JSON files stages write beside model weights: a model card (deterministic, part of the out)
 * and run statistics (wall time, images/s, memory: not deterministic, so kept in the logs folder where they
 * cannot make an out differ between two identical runs).
 */
import type { Model } from "../model/bit.ts";
import type { Config } from "../config/mod.ts";
import type { HistoryPoint, TrainLoopResult } from "../train/loop.ts";
import type { BackendInfo } from "../backend.ts";
import { flops } from "../model/bit.ts";
import { type DatasetPaths, stableJson, writeFileAtomic } from "./mod.ts";

export interface ModelCard {
  role: string;
  arch: string;
  image_size: number;
  num_classes: number;
  params: number;
  flops_per_image: number;
  val_top1: number | null;
  source: string;
  preprocess: { train?: string; eval: string };
}

/** Write `card.json` and `history.json` for a trained model into the out folder `dir`. */
export async function writeModelOut(
  dir: string,
  o: {
    model: Model;
    config: Config;
    role: "teacher" | "student";
    history: HistoryPoint[];
    valTop1: number;
    source: string;
    trainPreprocess?: string;
    extra?: Record<string, unknown>;
  },
): Promise<ModelCard> {
  const section = o.role === "teacher" ? o.config.teacher : o.config.student;
  const card: ModelCard & Record<string, unknown> = {
    role: o.role,
    arch: section.arch,
    image_size: section.image_size,
    num_classes: o.config.num_classes,
    params: o.model.paramCount(),
    flops_per_image: flops(o.model.spec, section.image_size),
    val_top1: Number.isFinite(o.valTop1) ? o.valTop1 : null,
    source: o.source,
    preprocess: {
      train: o.trainPreprocess ?? o.config.teacher.train?.preprocess,
      eval: o.config.eval.preprocess,
    },
    ...o.extra,
  };
  await writeFileAtomic(`${dir}/card.json`, stableJson(card, 2) + "\n");
  await writeFileAtomic(`${dir}/history.json`, stableJson({ points: o.history }, 2) + "\n");
  return card;
}

/** Wall-clock facts of a training run, for the report; outside every out on purpose. */
export async function writeRunStats(
  paths: DatasetPaths,
  name: string,
  backend: BackendInfo,
  loop: TrainLoopResult,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await Deno.mkdir(paths.logs, { recursive: true });
  await writeFileAtomic(
    `${paths.logs}/${name.replaceAll("/", "-")}.stats.json`,
    stableJson({
      backend: backend.name,
      threads: backend.threads,
      native: backend.native,
      label: backend.label,
      seconds: Number(loop.seconds.toFixed(1)),
      steps_run: loop.stepsRun,
      resumed_from: loop.resumedFrom,
      images_per_second: Number(loop.imagesPerSecond.toFixed(1)),
      peak_rss_mib: Math.round(loop.peakRssBytes / 2 ** 20),
      ...extra,
    }, 2) + "\n",
  );
}

/**
 * How much the teacher's answer moves between two random inception crops of the same image. A large
 * figure is the paper's argument against caching teacher predictions: a cached answer belongs to one view,
 * and the student is shown a different one every time.
 */
import { predictSplit } from "./predict.ts";
import { argmax, meanKl } from "./metrics.ts";
import type { Model } from "../model/bit.ts";
import type { SplitData } from "../train/data.ts";
import type { Config } from "../config/mod.ts";

export interface CropConsistency {
  /** Fraction of images whose teacher top-1 differs between the two crops. */
  top1_change_rate: number;
  /** Mean KL(p(crop A) ‖ p(crop B)) of the teacher's softmax. */
  mean_kl: number;
  pairs: number;
  crop: string;
}

/** Measure on `data` with two independently seeded passes of the `crop` preprocessing. */
export async function measureCropConsistency(
  teacher: Model,
  data: SplitData,
  config: Config,
  o: { crop: string; seed: number },
): Promise<CropConsistency> {
  const opts = {
    preprocess: o.crop,
    batchSize: config.eval.batch_size ?? 128,
    numClasses: config.num_classes,
  };
  const frozen = teacher.frozen();
  const [a] = await predictSplit([(x) => frozen.apply(x)], data, config, { ...opts, seed: o.seed * 2 + 1 });
  const [b] = await predictSplit([(x) => frozen.apply(x)], data, config, { ...opts, seed: o.seed * 2 + 2 });
  frozen.dispose();
  const ta = argmax(a.logits, a.numClasses);
  const tb = argmax(b.logits, b.numClasses);
  let changed = 0;
  for (let i = 0; i < a.n; i++) if (ta[i] !== tb[i]) changed++;
  return {
    top1_change_rate: changed / a.n,
    mean_kl: meanKl(a.logits, b.logits, a.numClasses, 1),
    pairs: a.n,
    crop: o.crop,
  };
}

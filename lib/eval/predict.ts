/**
 * Runs a model over a whole split with the evaluation preprocessing and collects its logits. Validation
 * during training, the cache-nothing measurement and the final evaluation all go through here, so they
 * see the same images the same way.
 */
import * as tf from "@tensorflow/tfjs";
import type { SplitData } from "../train/data.ts";
import { pipelineFor } from "../train/data.ts";
import type { Config } from "../config/mod.ts";

export interface Predictions {
  /** Row-major [n, numClasses]. */
  logits: Float32Array;
  labels: Int32Array;
  ids: Int32Array;
  n: number;
  numClasses: number;
}

/** A forward pass from an NHWC batch to logits: a TF.js function, or an engine that takes raw floats
 * (ONNX Runtime). */
export type Forward =
  | ((x: tf.Tensor4D) => tf.Tensor2D)
  | { raw: (x: Float32Array, shape: [number, number, number, number]) => Promise<Float32Array> };

/** Logits of every forward in `models` (same images, one decode) over `data`. */
export async function predictSplit(
  models: Forward[],
  data: SplitData,
  config: Config,
  o: { preprocess: string; batchSize: number; numClasses: number; seed?: number },
): Promise<Predictions[]> {
  const input = pipelineFor(data, config, {
    batchSize: o.batchSize,
    preprocess: o.preprocess,
    seed: o.seed ?? 0,
    train: false,
  });
  const chunks: Float32Array[][] = models.map(() => []);
  const labels: number[] = [];
  const ids: number[] = [];
  try {
    for (let b = await input.next(); b; b = await input.next()) {
      const x = tf.tensor4d(b.x, b.shape);
      for (const [i, f] of models.entries()) {
        if (typeof f === "function") {
          const y = tf.tidy(() => f(x));
          chunks[i].push(y.dataSync() as Float32Array);
          y.dispose();
        } else chunks[i].push(await f.raw(b.x.slice(), b.shape));
      }
      x.dispose();
      labels.push(...b.labels);
      ids.push(...b.ids);
    }
  } finally {
    await input.close();
  }
  const n = labels.length;
  return chunks.map((parts) => {
    const logits = new Float32Array(n * o.numClasses);
    let at = 0;
    for (const p of parts) {
      logits.set(p, at);
      at += p.length;
    }
    return {
      logits,
      labels: Int32Array.from(labels),
      ids: Int32Array.from(ids),
      n,
      numClasses: o.numClasses,
    };
  });
}

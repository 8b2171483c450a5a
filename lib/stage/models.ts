/** Rebuild a model from a weights file written by a stage, checking every parameter is there. */
import * as tf from "@tensorflow/tfjs";
import { bitSpec, buildModel, type Model } from "../model/bit.ts";
import { loadWeights } from "../model/weights.ts";
import { Rng } from "../rng.ts";

/** The model `arch` with the weights of `path`; a missing or misshapen parameter names the file. */
export async function loadModel(path: string, arch: string, numClasses: number): Promise<Model> {
  const model = buildModel(bitSpec(arch, numClasses), new Rng(0));
  const saved = await loadWeights(path);
  for (const [name, v] of model.params) {
    const w = saved.get(name);
    if (!w) throw new Error(`${path} has no parameter ${name} (expected the weights of a ${arch})`);
    if (w.shape.join() !== v.shape.join()) {
      throw new Error(`${path}: parameter ${name} has shape [${w.shape}], a ${arch} needs [${v.shape}]`);
    }
    v.assign(tf.tensor(w.data, w.shape));
  }
  return model;
}

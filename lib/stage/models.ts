/** Rebuild a model from a weights file written by a stage, checking every parameter is there. */
import { bitSpec, buildModel, type Model } from "../model/bit.ts";
import { assignParams, loadWeights } from "../model/weights.ts";
import { Rng } from "../rng.ts";

/** The model `arch` with the weights of `path`; a missing or misshapen parameter names the file. */
export async function loadModel(path: string, arch: string, numClasses: number): Promise<Model> {
  const model = buildModel(bitSpec(arch, numClasses), new Rng(0));
  assignParams(model.params, await loadWeights(path), path);
  return model;
}

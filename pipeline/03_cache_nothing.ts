/**
 * Stage 03, "cache nothing": freeze the teacher for online use and measure why its answers are never
 * cached — how much they move between two inception crops of the same image. Writes inference-only
 * weights, a card, that measurement, and the teacher as ONNX for the fast distillation path.
 */
import { readJson, runStage, stableJson, writeFileAtomic, writeOutDir } from "../lib/stage/mod.ts";
import { initBackend } from "../lib/backend.ts";
import { openData } from "../lib/train/data.ts";
import { loadModel } from "../lib/stage/models.ts";
import { measureCropConsistency } from "../lib/eval/consistency.ts";
import { exportOnnx } from "../lib/export/onnx.ts";
import type { ModelCard } from "../lib/stage/outputs.ts";

await runStage("freeze", async (ctx) => {
  const { config, paths } = ctx;
  await initBackend({ backend: config.backend, threads: config.threads, native: config.native });
  const card = await readJson<ModelCard>(`${paths.teacher}/card.json`, "the teacher's card");
  const teacher = await loadModel(`${paths.teacher}/weights.bin`, card.arch, config.num_classes);
  const val = await openData(paths.tfrecords, config, "validation");
  const n = Math.min(config.freeze?.consistency_images ?? 256, val.count);
  const consistency = await measureCropConsistency(teacher, { ...val, take: n, count: n }, config, {
    crop: config.freeze?.crop ?? config.distill.preprocess,
    seed: config.seed,
  });
  console.error(
    `freeze: between two inception crops of the same ${n} validation image${
      n === 1 ? "" : "s"
    } the teacher's top-1 changes ` +
      `${(100 * consistency.top1_change_rate).toFixed(1)} % of the time (mean KL ${
        consistency.mean_kl.toFixed(3)
      })`,
  );
  await writeOutDir(paths.frozen, async (tmp) => {
    await Deno.copyFile(`${paths.teacher}/weights.bin`, `${tmp}/teacher.bin`);
    await writeFileAtomic(
      `${tmp}/card.json`,
      stableJson(
        { ...card, frozen: true, inference_only: true, eval_preprocess: config.eval.preprocess },
        2,
      ) + "\n",
    );
    await writeFileAtomic(`${tmp}/consistency.json`, stableJson(consistency, 2) + "\n");
    await Deno.writeFile(
      `${tmp}/teacher.onnx`,
      exportOnnx(teacher.spec, teacher.params, { imageSize: card.image_size }),
    );
  });
});

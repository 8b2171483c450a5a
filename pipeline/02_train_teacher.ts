/** Stage 02: the teacher, trained on labels (or imported from a pretrained checkpoint). */
import { runStage, writeOutDir } from "../lib/stage/mod.ts";
import { initBackend } from "../lib/backend.ts";
import { trainTeacher, validationTop1 } from "../lib/train/teacher.ts";
import { clearCheckpoint } from "../lib/train/loop.ts";
import { openData } from "../lib/train/data.ts";
import { bitSpec, buildModel } from "../lib/model/bit.ts";
import { loadPretrained } from "../lib/model/npz.ts";
import { saveWeights } from "../lib/model/weights.ts";
import { Rng } from "../lib/rng.ts";
import { writeModelOut, writeRunStats } from "../lib/stage/outputs.ts";

await runStage("teacher", async (ctx) => {
  const { config, paths } = ctx;
  const backend = await initBackend({
    backend: config.backend,
    threads: config.threads,
    native: config.native,
  });
  const t = config.teacher;
  const checkpointDir = `${paths.checkpoints}/teacher`;
  if (t.pretrained) {
    const model = buildModel(bitSpec(t.arch, config.num_classes), new Rng(`${config.seed}/teacher/init`));
    await loadPretrained(model, t.pretrained);
    const val = await openData(paths.tfrecords, config, "validation");
    const valTop1 = await validationTop1(model, val, config);
    console.error(`teacher: imported ${t.pretrained}; validation top-1 ${(100 * valTop1).toFixed(2)} %`);
    await writeOutDir(paths.teacher, async (tmp) => {
      await saveWeights(`${tmp}/weights.bin`, model.params);
      await writeModelOut(tmp, {
        model,
        config,
        role: "teacher",
        history: [],
        valTop1,
        source: t.pretrained,
      });
    });
    return;
  }
  const run = await trainTeacher(config, {
    tfrecords: paths.tfrecords,
    checkpointDir,
    depsHash: ctx.depsHash,
    logFile: ctx.logFile,
  });
  if (run.loop.interrupted) Deno.exit(130);
  await writeOutDir(paths.teacher, async (tmp) => {
    await saveWeights(`${tmp}/weights.bin`, run.model.params);
    await writeModelOut(tmp, {
      model: run.model,
      config,
      role: "teacher",
      history: run.history,
      valTop1: run.valTop1,
      source: "trained",
    });
  });
  await writeRunStats(paths, "teacher", backend, run.loop);
  await clearCheckpoint(checkpointDir);
});

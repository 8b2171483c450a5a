/**
 * Stage 04: distill the frozen teacher into one student per configured mode (function matching by
 * default). No labels in function matching; the teacher is called online on every mixed batch.
 */
import { readJson, runStage, stableJson, writeFileAtomic, writeOutDir } from "../lib/stage/mod.ts";
import { initBackend } from "../lib/backend.ts";
import { distillStudent, type Mode } from "../lib/train/distill.ts";
import { clearCheckpoint } from "../lib/train/loop.ts";
import { loadModel } from "../lib/stage/models.ts";
import { saveWeights } from "../lib/model/weights.ts";
import { type ModelCard, writeModelOut, writeRunStats } from "../lib/stage/outputs.ts";

await runStage("distill", async (ctx) => {
  const { config, paths } = ctx;
  const backend = await initBackend({ backend: config.backend, threads: config.threads });
  const card = await readJson<ModelCard>(`${paths.frozen}/card.json`, "the frozen teacher's card");
  const teacher = await loadModel(`${paths.frozen}/teacher.bin`, card.arch, config.num_classes);
  const onnxTeacher = await Deno.readFile(`${paths.frozen}/teacher.onnx`).catch(() => undefined);
  const checkpoints = `${paths.checkpoints}/distill`;
  const modes = config.distill.modes as Mode[];
  // a finished mode is kept here until every mode is done, so a crash in the second mode keeps the first
  const doneDir = (mode: Mode) => `${checkpoints}/${mode}.done`;
  for (const mode of modes) {
    const done = await readJson<{ depsHash: string }>(`${doneDir(mode)}/done.json`, "").catch(() => null);
    if (done?.depsHash === ctx.depsHash) {
      console.error(`distill: ${mode}: already finished in this run's checkpoint, reusing it`);
      continue;
    }
    console.error(`distill: ${mode}: student ${config.student.arch}, ${config.distill.steps} steps`);
    const run = await distillStudent(config, mode, {
      tfrecords: paths.tfrecords,
      teacher,
      onnxTeacher,
      checkpointDir: checkpoints,
      depsHash: ctx.depsHash,
      logFile: ctx.logFile,
    });
    if (run.loop.interrupted) Deno.exit(130);
    await writeOutDir(doneDir(mode), async (tmp) => {
      await saveWeights(`${tmp}/weights.bin`, run.model.params);
      const last = [...run.history].reverse().find((p) => p.val_top1 !== undefined);
      await writeModelOut(tmp, {
        model: run.model,
        config,
        role: "student",
        history: run.history,
        valTop1: last?.val_top1 ?? NaN,
        source: `distilled (${mode})`,
        trainPreprocess: config.distill.preprocess,
        extra: {
          mode,
          val_agreement: last?.val_agreement ?? null,
          steps: config.distill.steps,
          batch_size: config.distill.batch_size,
          temperature: config.distill.temperature,
        },
      });
      await writeFileAtomic(`${tmp}/done.json`, stableJson({ depsHash: ctx.depsHash }) + "\n");
    });
    await writeRunStats(paths, `distill-${mode}`, backend, run.loop, {
      teacher_runtime: run.teacherRuntime,
      teacher_calls: run.teacherCalls,
    });
    await clearCheckpoint(`${checkpoints}/${mode}`);
  }
  await writeOutDir(paths.students, async (tmp) => {
    for (const mode of modes) {
      await Deno.mkdir(`${tmp}/${mode}`);
      for (const f of ["weights.bin", "card.json", "history.json"]) {
        await Deno.copyFile(`${doneDir(mode)}/${f}`, `${tmp}/${mode}/${f}`);
      }
    }
  });
  await clearCheckpoint(checkpoints);
});

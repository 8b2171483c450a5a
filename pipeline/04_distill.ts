/**
 * Stage 04: distill the frozen teacher into one student per configured mode (function matching by
 * default). No labels in function matching; the teacher is called online on every mixed batch.
 */
import {
  readJson,
  runStage,
  stableHash,
  stableJson,
  writeFileAtomic,
  writeOutDir,
} from "../lib/stage/mod.ts";
import { initBackend } from "../lib/backend.ts";
import { distillStudent, type Mode } from "../lib/train/distill.ts";
import { clearCheckpoint } from "../lib/train/loop.ts";
import { loadModel } from "../lib/stage/models.ts";
import { saveWeights } from "../lib/model/weights.ts";
import { type ModelCard, writeModelOut, writeRunStats } from "../lib/stage/outputs.ts";

await runStage("distill", async (ctx) => {
  const { config, paths } = ctx;
  const backend = await initBackend({
    backend: config.backend,
    threads: config.threads,
    native: config.native,
  });
  const card = await readJson<ModelCard>(`${paths.frozen}/card.json`, "the frozen teacher's card");
  const teacher = await loadModel(`${paths.frozen}/teacher.bin`, card.arch, config.num_classes);
  const onnxTeacher = await Deno.readFile(`${paths.frozen}/teacher.onnx`).catch(() => undefined);
  const checkpoints = `${paths.checkpoints}/distill`;
  const modes = config.distill.modes as Mode[];
  // A finished mode is kept under checkpoints/ with the key of everything it depends on: the stage's code
  // and inputs and the config without `distill.modes`. Adding a mode (e.g. --profile cpu-ablations after
  // cpu) then trains only the new one, and a crash in the second mode keeps the first. Run standalone,
  // the stage cannot see its code and inputs, so a finished mode is reused only within the same config.
  const doneDir = (mode: Mode) => `${checkpoints}/${mode}.done`;
  const withoutModes = structuredClone(config);
  delete (withoutModes.distill as Record<string, unknown>).modes;
  const modeKey = (mode: Mode) =>
    ctx.inputsHash === undefined
      ? `${ctx.depsHash}/${mode}`
      : `${ctx.inputsHash}/${stableHash(withoutModes)}/${mode}`;
  for (const mode of modes) {
    const done = await readJson<{ key: string }>(`${doneDir(mode)}/done.json`, "").catch(() => null);
    if (done?.key === modeKey(mode)) {
      console.error(`distill: ${mode}: already trained with this code, data and config, reusing it`);
      continue;
    }
    console.error(`distill: ${mode}: student ${config.student.arch}, ${config.distill.steps} steps`);
    const run = await distillStudent(config, mode, {
      tfrecords: paths.tfrecords,
      teacher,
      onnxTeacher,
      checkpointDir: checkpoints,
      depsHash: modeKey(mode),
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
      await writeFileAtomic(`${tmp}/done.json`, stableJson({ key: modeKey(mode) }) + "\n");
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
});

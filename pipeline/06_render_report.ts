/**
 * Stage 06: `reports/<dataset>.md` and its figures, from the metrics, histories and config alone (the
 * rendering is a pure function of them), plus the `reports/README.md` index over every dataset evaluated.
 */
import YAML from "yaml";
import { readJson, repoRoot, runStage, writeFileAtomic } from "../lib/stage/mod.ts";
import {
  type History,
  type IndexEntry,
  mainMode,
  renderIndex,
  renderReport,
  writeReport,
} from "../lib/report/mod.ts";
import type { CacheNothing, M, StageRun } from "../lib/report/mod.ts";
import type { LockFile } from "../lib/runner/lock.ts";
import { version as tfjsVersion } from "@tensorflow/tfjs";

await runStage("report", async (ctx) => {
  const { config, paths, dataset } = ctx;
  const metrics = await readJson<
    { teacher: M; students: Record<string, M>; backend?: { name: string; threads: number; label?: string } }
  >(
    `${paths.eval}/metrics.json`,
    "the evaluation metrics",
  );
  const teacherHistory = await readJson<History>(`${paths.teacher}/history.json`, "the teacher's history");
  const students: Record<string, History> = {};
  for (const mode of Object.keys(metrics.students)) {
    students[mode] = await readJson<History>(`${paths.students}/${mode}/history.json`, `the ${mode} history`);
  }
  const cacheNothing = await readJson<CacheNothing>(
    `${paths.frozen}/consistency.json`,
    "the cache-nothing figure",
  );

  const manifestDoc = YAML.parse(await Deno.readTextFile(`${repoRoot}/pipeline/manifest.yaml`));
  const fill = (p: string) => p.replaceAll("{dataset}", dataset);
  const manifestStages = Object.entries(
    manifestDoc.stages as Record<string, { script: string; deps?: string[]; outs?: string[] }>,
  )
    .map(([name, s]) => ({
      name,
      script: s.script,
      deps: (s.deps ?? []).map(fill),
      outs: (s.outs ?? []).map(fill),
    }));
  const lock = await readJson<LockFile>(paths.lock, "the pipeline lock").catch(() => null);
  const stages: StageRun[] = manifestStages.map((s) => {
    const entry = lock?.stages?.[s.name];
    const status = s.name === "report" ? "ran" : lock?.last_run?.stages?.[s.name] ?? "fresh";
    return {
      name: s.name,
      script: s.script,
      status,
      duration_s: s.name === "report" ? undefined : entry?.duration_s,
    };
  });

  // the images distillation drew from, for epochs and the comparison with the published run
  const fetched = await readJson<{ splits: Record<string, { records: number }[]> }>(
    `${paths.tfrecords}/manifest.json`,
    "the fetched dataset's manifest",
  );
  const trainRecords = (fetched.splits.train ?? []).reduce((a, s) => a + s.records, 0);
  const take = config.data.take?.train;
  const trainImages = take ? Math.min(take, trainRecords) : trainRecords;

  const commit = await new Deno.Command("git", {
    args: ["rev-parse", "--short", "HEAD"],
    cwd: repoRoot,
    stderr: "null",
  })
    .output().then((o) => new TextDecoder().decode(o.stdout).trim() || undefined).catch(() => undefined);
  const out = await renderReport({
    dataset,
    profile: ctx.profile,
    config,
    metrics,
    histories: { teacher: teacherHistory, students },
    cacheNothing,
    stages,
    manifest: { stages: manifestStages },
    run: { train_images: trainImages },
    environment: {
      backend: metrics.backend?.label ?? metrics.backend?.name ?? "unknown",
      // a label already says its thread counts
      threads: metrics.backend?.label ? undefined : metrics.backend?.threads,
      deno: Deno.version.deno,
      tfjs: tfjsVersion.tfjs,
      git_commit: commit,
    },
  });
  await writeReport(`${repoRoot}/reports`, dataset, out);
  console.error(`report: wrote reports/${dataset}.md and ${out.files.size} figure(s) in reports/${dataset}/`);

  // the index covers every dataset with metrics, so it is rebuilt whichever dataset ran last
  const entries: IndexEntry[] = [];
  for await (const e of Deno.readDir(`${repoRoot}/data`)) {
    if (!e.isDirectory) continue;
    const m = await readJson<{ teacher: M; students: Record<string, M> }>(
      `${repoRoot}/data/${e.name}/eval/metrics.json`,
      "",
    ).catch(() => null);
    if (!m) continue;
    const mode = mainMode(Object.keys(m.students));
    if (!mode) continue;
    const lockOf = await readJson<LockFile>(`${repoRoot}/data/${e.name}/pipeline.lock`, "").catch(() => null);
    const s = m.students[mode];
    entries.push({
      dataset: e.name,
      profile: e.name === dataset ? ctx.profile : lockOf?.stages?.evaluate?.profile ?? "?",
      teacher_top1: m.teacher.top1,
      student_top1: s.top1,
      agreement: s.agreement_top1,
      compression: s.compression ?? m.teacher.params / s.params,
    });
  }
  entries.sort((a, b) => a.dataset.localeCompare(b.dataset));
  await writeFileAtomic(`${repoRoot}/reports/README.md`, renderIndex(entries));
});

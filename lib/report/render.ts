/**
 * The per-dataset report (`reports/<ds>.md` + `reports/<ds>/*.svg`) and the index (`reports/README.md`).
 *
 * Why this module exists: a user decides from this page whether the student is good enough to ship, so it
 * leads with the verdict and the headline numbers, puts them beside the published ones with a plain
 * account of how this run differs, and then gives the evidence (curves, confusion, per-class, why nothing
 * is cached, what ran, the config, the environment, the pipeline). Rendering is pure: the same input gives
 * the same bytes (no clock, no randomness, sorted modes, fixed number formats), so a report only changes
 * in git when a result changed.
 *
 * @module
 */
import YAML from "yaml";
import type { M } from "../eval/metrics.ts";
import { classLabels, confusionSpec, curveSpec, PALETTE, ratesSpec, type Series } from "./charts.ts";
import * as f from "./format.ts";
import { type ManifestStage, mermaidChain, mermaidFlowchart } from "./mermaid.ts";
import { type Published, publishedFor } from "./published.ts";
import { renderVegaLite } from "./svg.ts";

export type { M } from "../eval/metrics.ts";
export type { ManifestStage } from "./mermaid.ts";
export type { Published, PublishedStudent } from "./published.ts";

/** One logged point of a training run (accuracies as fractions). */
export interface HistoryPoint {
  step: number;
  loss?: number;
  val_top1?: number;
  val_agreement?: number;
  lr?: number;
}

/** A training run's log, as in `data/<ds>/teacher/history.json` and `data/<ds>/students/<mode>/history.json`. */
export interface History {
  points: HistoryPoint[];
}

/** What the runner did with one stage in the run that produced this report. */
export interface StageRun {
  name: string;
  script: string;
  /** "ran": executed in this run; "fresh": up to date, skipped. */
  status: "ran" | "fresh";
  duration_s?: number;
}

/** Where the numbers were measured. */
export interface Environment {
  backend: string;
  threads?: number;
  deno: string;
  tfjs: string;
  git_commit?: string;
}

/** Result of the cache-nothing stage: how often the teacher's answer moves between two inception crops. */
export interface CacheNothing {
  /** Fraction of crop pairs whose teacher top-1 differs. */
  top1_change_rate: number;
  /** Mean KL between the teacher's softmaxes on the two crops, nats. */
  mean_kl: number;
  /** Number of (image, two crops) pairs measured. */
  pairs: number;
}

/**
 * Facts about this run used to compare it with the published one. Anything not given is derived from the
 * resolved config (`teacher.arch`, `student.arch`, `student.image_size`, `distill.steps`,
 * `distill.batch_size`, `distill.temperature`, `data.take.train`).
 */
export interface RunFacts {
  teacher_arch?: string;
  student_arch?: string;
  /** Student input resolution, px. */
  resolution?: number;
  /** Distillation steps. */
  steps?: number;
  /** Distillation batch size. */
  batch_size?: number;
  /** Training images the student saw (size of the train split, after any `take`). */
  train_images?: number;
  /** Distillation epochs; derived as steps × batch / train_images when absent. */
  epochs?: number;
  temperature?: number;
}

/** Everything the report is made from. */
export interface ReportInput {
  /** Dataset name (`pets37`, `cifar10`, …); also the folder name under `reports/`. */
  dataset: string;
  /** Profile the run used (`paper`, `cpu`, `smoke`). */
  profile: string;
  /** Resolved config, printed as YAML. */
  config: Record<string, unknown>;
  /** `data/<ds>/eval/metrics.json`. */
  metrics: { teacher: M; students: Record<string, M> };
  /** Class names, index = label; defaults to `config.classes`, then to the indices. */
  classes?: string[];
  histories: { teacher?: History; students: Record<string, History> };
  cacheNothing?: CacheNothing;
  stages?: StageRun[];
  /** Pipeline manifest, for the Mermaid diagram. */
  manifest?: { stages: ManifestStage[] };
  environment?: Environment;
  /** Published reference numbers; default `config.published`, then the built-in table; null = none. */
  published?: Published | null;
  /** Split the metrics were computed on (default "test"). */
  split?: string;
  /** Overrides of the run facts derived from the config. */
  run?: RunFacts;
}

/** Rendered report: the markdown and the figures, keyed by path relative to `reports/<ds>/`. */
export interface ReportOutput {
  markdown: string;
  files: Map<string, string>;
}

/** One row of `reports/README.md`. */
export interface IndexEntry {
  dataset: string;
  profile: string;
  teacher_top1: number;
  student_top1: number;
  agreement: number;
  compression: number;
}

/** The student whose numbers lead the report: `function_matching` if present, else the first by name. */
export function mainMode(modes: string[]): string | null {
  if (modes.includes("function_matching")) return "function_matching";
  return [...modes].sort()[0] ?? null;
}

/** Modes in report order: the main one first, the rest by name. */
export function orderedModes(modes: string[]): string[] {
  const main = mainMode(modes);
  return main === null ? [] : [main, ...[...modes].filter((m) => m !== main).sort()];
}

function num(x: unknown): number | undefined {
  return typeof x === "number" && Number.isFinite(x) ? x : undefined;
}

function get(o: unknown, path: string): unknown {
  let v: unknown = o;
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** Run facts from the resolved config, overridden by `run`. */
export function deriveRunFacts(config: Record<string, unknown>, run: RunFacts = {}): RunFacts {
  const str = (x: unknown) => (typeof x === "string" ? x : undefined);
  const facts: RunFacts = {
    teacher_arch: run.teacher_arch ?? str(get(config, "teacher.arch")),
    student_arch: run.student_arch ?? str(get(config, "student.arch")),
    resolution: run.resolution ?? num(get(config, "student.image_size")),
    steps: run.steps ?? num(get(config, "distill.steps")),
    batch_size: run.batch_size ?? num(get(config, "distill.batch_size")),
    train_images: run.train_images ?? num(get(config, "data.take.train")),
    temperature: run.temperature ?? num(get(config, "distill.temperature")),
    epochs: run.epochs,
  };
  if (facts.epochs === undefined && facts.steps && facts.batch_size && facts.train_images) {
    facts.epochs = (facts.steps * facts.batch_size) / facts.train_images;
  }
  return facts;
}

/**
 * The published numbers to compare with: `input.published` if given (null = none); else the config's
 * `published` block (null = none) laid over the built-in entry for the dataset, if any; else the built-in.
 */
export function resolvePublished(
  dataset: string,
  config: Record<string, unknown>,
  given?: Published | null,
): Published | null {
  if (given !== undefined) return given;
  const builtin = publishedFor(dataset);
  const p = get(config, "published");
  if (p === null) return null;
  if (!p || typeof p !== "object") return builtin;
  const o = p as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === "string" ? x : undefined);
  const students = Array.isArray(o.students)
    ? o.students.map((s: Record<string, unknown>) => ({
      top1: Number(s.top1),
      epochs: Number(s.epochs),
      arch: str(s.arch),
    }))
    : undefined;
  const teacherTop1 = num(o.teacher_top1) ?? builtin?.teacher_top1;
  if (teacherTop1 === undefined || !(students ?? builtin?.students)) return builtin;
  const out: Published = {
    ...(builtin ?? { name: dataset, source: "config `published`", teacher_top1: teacherTop1, students: [] }),
  };
  out.teacher_top1 = teacherTop1;
  if (students) out.students = students;
  if (str(o.source)) out.source = str(o.source)!;
  if (str(o.teacher_arch)) out.teacher_arch = str(o.teacher_arch);
  if (str(o.note)) out.note = str(o.note);
  return out;
}

const code = (s: string) => "`" + s.replace(/`/g, "'") + "`";

function compressionOf(m: M, teacher: M): number | undefined {
  return num(m.compression) ?? (m.params > 0 ? num(teacher.params / m.params) : undefined);
}

function speedupOf(m: M, teacher: M): number | undefined {
  return num(m.speedup) ??
    (m.latency_ms_b1 > 0 ? num(teacher.latency_ms_b1 / m.latency_ms_b1) : undefined);
}

function throughputGainOf(m: M, teacher: M): number | undefined {
  return num(m.throughput_speedup) ??
    (teacher.throughput_b64 > 0 ? num(m.throughput_b64 / teacher.throughput_b64) : undefined);
}

function table(header: string[], rows: string[][], align?: string[]): string {
  const sep = header.map((_, i) => align?.[i] ?? "---");
  return [header, sep, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

function perClassOf(m: M, c: number): number | undefined {
  const v = m.per_class?.[c] as number | null | undefined;
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function fence(body: string, lang: string): string {
  const longest = Math.max(2, ...[...body.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = "`".repeat(longest + 1);
  return `${ticks}${lang}\n${body.replace(/\n+$/, "")}\n${ticks}`;
}

/** The "labels beats function matching" statement, or "" when it does not apply. */
export function labelsBeatFmSentence(students: Record<string, M>, epochs?: number): string {
  const fm = students.function_matching;
  const lb = students.labels;
  if (!fm || !lb || !(lb.top1 > fm.top1)) return "";
  const ran = epochs !== undefined ? `, while this run distilled for about ${f.dec(epochs, 1)} epochs` : "";
  return `A student trained on labels alone scores higher than function matching here ` +
    `(${f.pct(lb.top1)} against ${
      f.pct(fm.top1)
    }): short schedules favour labels, and the paper's point is ` +
    `that function matching keeps improving with long schedules (hundreds to thousands of epochs)${ran}.`;
}

/** How function matching compares with the ablation students it beat, or "" when there are none. */
export function ablationSentence(students: Record<string, M>): string {
  const fm = students.function_matching;
  if (!fm) return "";
  const names: Record<string, string> = {
    fixed_teacher: "the fixed teacher (answers precomputed on centre crops)",
    consistent: "consistent teaching without mixup",
    labels: "training on the labels",
  };
  const beaten = Object.keys(names).filter((m) => students[m] && students[m].top1 < fm.top1);
  if (beaten.length === 0) return "";
  const parts = beaten.map((m) =>
    `${names[m]} by ${f.pts(fm.top1 - students[m].top1).replace(/^\+/, "")} (agreement ${
      f.pts(fm.agreement_top1 - students[m].agreement_top1)
    })`
  );
  return `At the same budget function matching beats ${parts.join(" and ")}.`;
}

function verdict(input: ReportInput, facts: RunFacts, split: string): string {
  const { teacher, students } = input.metrics;
  const main = mainMode(Object.keys(students));
  if (main === null) return "**At a glance.** No student was evaluated, so there is nothing to ship yet.";
  const s = students[main];
  const parts: string[] = [];
  const n = num(s.n);
  const on = n !== undefined
    ? `the ${code(split)} split (${f.count(n, "image")})`
    : `the ${code(split)} split`;
  parts.push(
    `**At a glance.** The ${code(main)} student reaches **${f.pct(s.top1)}** top-1 on ${on}, against ` +
      `**${f.pct(teacher.top1)}** for the teacher (${f.pts(s.top1 - teacher.top1)}), and agrees with the ` +
      `teacher's top-1 on **${f.pct(s.agreement_top1)}** of the images.`,
  );
  const comp = compressionOf(s, teacher);
  const sp = speedupOf(s, teacher);
  const size: string[] = [];
  if (comp !== undefined) {
    size.push(
      `**${f.times(comp)}** smaller than the teacher (${f.int(s.params)} against ${
        f.int(teacher.params)
      } parameters)`,
    );
  }
  if (sp !== undefined) {
    size.push(
      sp >= 1
        ? `**${f.times(sp)}** faster at batch 1 (${f.ms(s.latency_ms_b1)} against ${
          f.ms(teacher.latency_ms_b1)
        })`
        : `**${f.times(1 / sp)}** slower at batch 1 (${f.ms(s.latency_ms_b1)} against ${
          f.ms(teacher.latency_ms_b1)
        })`,
    );
  }
  const tg = throughputGainOf(s, teacher);
  if (size.length) {
    parts.push(
      `It is ${size.join(" and ")}${
        tg !== undefined
          ? `, and runs **${f.times(tg)}** the teacher's throughput at batch 64 (${
            f.ips(s.throughput_b64)
          } against ${f.ips(teacher.throughput_b64)})`
          : ""
      }.`,
    );
  }
  if (n !== undefined && n > 0) {
    const se = Math.sqrt((s.top1 * (1 - s.top1)) / n);
    if (n < 100) {
      // a standard error from a handful of images (0 when every one is right) would itself mislead
      parts.push(
        `With only ${f.count(n, "evaluation image")} these accuracies say little: one image is ` +
          `${f.dec(100 / n, 1)} points.`,
      );
    } else if (se > 0.01) {
      parts.push(
        `With ${f.count(n, "evaluation image")} the standard error of that top-1 is about ±${
          f.dec(se * 100, 1)
        } ` +
          `points, so differences of a few points are noise.`,
      );
    }
  }
  const C = teacher.per_class?.length ?? 0;
  if (C > 1 && teacher.top1 < 1.5 / C) {
    parts.push(
      `The teacher is at chance level (1/${C} = ${f.pct(1 / C)}): it has not learned the task, so neither ` +
        `number says anything about distillation yet. This run exercised the pipeline; a longer profile, ` +
        `more data or \`teacher.pretrained\` is what gives a teacher worth matching.`,
    );
  }
  const lb = labelsBeatFmSentence(students, facts.epochs);
  if (lb) parts.push(lb);
  const ab = ablationSentence(students);
  if (ab) parts.push(ab);
  return parts.join(" ");
}

function headline(input: ReportInput, facts: RunFacts, modes: string[], split: string): string {
  const { teacher, students } = input.metrics;
  // with five classes or fewer every label is in the top 5: the column would only ever read 100 %
  const few = (teacher.per_class?.length ?? 99) <= 5;
  const top5 = (x: number) => few ? f.DASH : f.pct(x);
  const header = [
    "Model",
    "Top-1",
    "Top-5",
    "Agree@1",
    "Agree@5",
    "KL",
    "Params",
    "Size on disk",
    "Latency b1",
    "Throughput b64",
    "Compression",
    "Speed-up b1",
    "Throughput ×",
  ];
  const arch = (a?: string) => (a ? ` (${code(a)})` : "");
  const rows = [[
    `teacher${arch(facts.teacher_arch)}`,
    f.pct(teacher.top1),
    top5(teacher.top5),
    f.DASH,
    f.DASH,
    f.DASH,
    f.int(teacher.params),
    f.bytes(teacher.bytes),
    f.ms(teacher.latency_ms_b1),
    f.ips(teacher.throughput_b64),
    f.times(1),
    f.times(1),
    f.times(1),
  ]];
  for (const mode of modes) {
    const m = students[mode];
    rows.push([
      `student ${code(mode)}${arch(facts.student_arch)}`,
      f.pct(m.top1),
      top5(m.top5),
      f.pct(m.agreement_top1),
      top5(m.agreement_top5),
      f.dec(m.kl),
      f.int(m.params),
      f.bytes(m.bytes),
      f.ms(m.latency_ms_b1),
      f.ips(m.throughput_b64),
      f.times(compressionOf(m, teacher)),
      f.times(speedupOf(m, teacher)),
      f.times(throughputGainOf(m, teacher)),
    ]);
  }
  const align = ["---", ...header.slice(1).map(() => "--:")];
  const n = num(teacher.n);
  const backend = input.environment
    ? ` on the ${code(input.environment.backend)} backend` +
      (input.environment.threads
        ? ` (${input.environment.threads} thread${input.environment.threads === 1 ? "" : "s"})`
        : "")
    : "";
  return [
    "## Headline numbers",
    "",
    `Measured on the ${code(split)} split${n !== undefined ? ` (${f.count(n, "image")})` : ""}.`,
    "",
    table(header, rows, align),
    "",
    (few ? "Top-5 and Agree@5 are left out: with five classes or fewer they are always 100 %. " : "") +
    `Top-k: the label is among the model's k highest logits. Agree@k: the teacher's top-1 class is among ` +
    `the student's top-k. KL: mean KL(teacher ‖ student) of the softmaxes at T = 1, in nats. Size on disk: ` +
    `the weights file. Latency b1: median forward time of one image; throughput b64: images per second at ` +
    `batch 64${backend}. Compression: teacher parameters / student parameters. Speed-up b1: teacher batch-1 ` +
    `latency / student batch-1 latency. Throughput ×: student throughput / teacher throughput at batch 64.`,
  ].join("\n");
}

function publishedSection(input: ReportInput, facts: RunFacts, pub: Published | null): string {
  const { teacher, students } = input.metrics;
  const main = mainMode(Object.keys(students));
  const out = ["## Compared with the published numbers", ""];
  const ours = `this run (${code(input.profile)} profile)`;
  const sched = (): string => {
    const parts: string[] = [];
    if (facts.steps !== undefined) {
      parts.push(
        `${f.int(facts.steps)} steps` + (facts.batch_size ? ` × batch ${f.int(facts.batch_size)}` : ""),
      );
    }
    if (facts.epochs !== undefined) parts.push(`≈ ${f.dec(facts.epochs, 1)} epochs`);
    return parts.join(", ") || f.DASH;
  };
  const oursRow = [
    `${ours}: ${facts.teacher_arch ? code(facts.teacher_arch) : "teacher"} → ` +
    `${facts.student_arch ? code(facts.student_arch) : "student"}`,
    f.pct(teacher.top1),
    main ? `${f.pct(students[main].top1)} (${code(main)})` : f.DASH,
    sched(),
    facts.resolution !== undefined ? `${facts.resolution} px` : f.DASH,
    facts.train_images !== undefined ? f.int(facts.train_images) : f.DASH,
  ];
  const header = ["", "Teacher top-1", "Student top-1", "Student schedule", "Resolution", "Training images"];
  if (!pub) {
    out.push(
      publishedFor(input.dataset)
        ? `Published numbers exist for ${
          code(input.dataset)
        } but this run's config turns the comparison off ` +
          `(\`published: null\`), so this run is judged against its own teacher only.`
        : `There is no published FunMatch number for ${
          code(input.dataset)
        }: the original work and its public ` +
          `re-implementation report other datasets, so this run is judged against its own teacher only.`,
      "",
      table(header, [oursRow]),
    );
    return out.join("\n");
  }
  const rows = pub.students.map((s) => [
    `published: ${pub.teacher_arch ?? "teacher"} → ${s.arch ?? pub.student_arch ?? "student"}`,
    f.pct(pub.teacher_top1),
    f.pct(s.top1),
    `${f.int(s.epochs)} epochs` + (pub.batch_size ? `, batch ${f.int(pub.batch_size)}` : ""),
    pub.resolution !== undefined ? `${pub.resolution} px` : "not published",
    pub.train_images !== undefined ? f.int(pub.train_images) : "not published",
  ]);
  out.push(
    `Published: ${cellText(pub.source)}, ${cellText(pub.name)}.`,
    "",
    table(header, [...rows, oursRow]),
    "",
  );
  const diffs: string[] = [];
  diffs.push(
    `Profile: ${code(input.profile)}` +
      (facts.teacher_arch || facts.student_arch
        ? `, with teacher ${facts.teacher_arch ? code(facts.teacher_arch) : "(unrecorded)"} and student ` +
          `${facts.student_arch ? code(facts.student_arch) : "(unrecorded)"}` +
          ` where the published run distilled ${pub.teacher_arch ?? "its teacher"} into ${
            pub.student_arch ?? "its student"
          }.`
        : "."),
  );
  if (facts.resolution !== undefined) {
    diffs.push(
      `Resolution: ${facts.resolution} px` +
        (pub.resolution !== undefined
          ? ` against ${pub.resolution} px.`
          : "; the published one is not stated."),
    );
  }
  const minEp = Math.min(...pub.students.map((s) => s.epochs));
  if (facts.epochs !== undefined) {
    diffs.push(
      `Schedule: about ${f.dec(facts.epochs, 1)} epochs` +
        (facts.steps !== undefined ? ` (${f.int(facts.steps)} steps)` : "") + ` against ` +
        `${pub.students.map((s) => f.int(s.epochs)).join(" and ")} published, i.e. ` +
        `${f.pct(facts.epochs / minEp)} of the shortest published schedule.`,
    );
  } else if (facts.steps !== undefined) {
    diffs.push(
      `Schedule: ${sched()} against ${
        pub.students.map((s) => f.int(s.epochs)).join(" and ")
      } epochs published.`,
    );
  }
  if (facts.train_images !== undefined) {
    diffs.push(
      `Data: ${f.int(facts.train_images)} training images` +
        (pub.train_images !== undefined
          ? ` against ${f.int(pub.train_images)}.`
          : "; the published training-set size is not stated."),
    );
  }
  if (pub.note) diffs.push(`Note: ${cellText(pub.note)}.`);
  out.push("How this run differs:", "", ...diffs.map((d) => `- ${d}`));
  return out.join("\n");
}

function cellText(s: string): string {
  return f.cell(s);
}

function curveSeries(
  input: ReportInput,
  modes: string[],
  key: "loss" | "val_top1" | "val_agreement",
): Series[] {
  const all: [string, History | undefined][] = [
    ["teacher", key === "val_agreement" ? undefined : input.histories.teacher],
    ...modes.map((m): [string, History | undefined] => [`student ${m}`, input.histories.students[m]]),
  ];
  const out: Series[] = [];
  for (const [i, [model, h]] of all.entries()) {
    const points = (h?.points ?? [])
      .filter((p) => num(p.step) !== undefined && num(p[key]) !== undefined)
      .map((p) => ({ step: p.step, value: p[key] as number }));
    if (points.length) out.push({ model, points, color: PALETTE[i % PALETTE.length] });
  }
  return out;
}

function perClassSection(input: ReportInput, modes: string[], classes: string[] | undefined): string {
  const { teacher, students } = input.metrics;
  const C = teacher.per_class?.length ?? 0;
  if (C === 0) return "## Per-class accuracy\n\n_No per-class numbers were recorded._";
  const labels = classLabels(C, classes);
  const main = modes[0];
  const header = ["Class", "Images", "Teacher", ...modes.map((m) => `Student ${code(m)}`)];
  if (main) header.push(`Δ ${code(main)}`);
  const rows: string[][] = [];
  for (let c = 0; c < C; c++) {
    const count = teacher.confusion?.[c]?.reduce((a, b) => a + b, 0);
    const t = perClassOf(teacher, c);
    const row = [
      f.cell(labels[c]),
      f.int(count),
      f.pct(t),
      ...modes.map((m) => f.pct(perClassOf(students[m], c))),
    ];
    if (main) {
      const s = perClassOf(students[main], c);
      row.push(t !== undefined && s !== undefined ? f.pts(s - t) : f.DASH);
    }
    rows.push(row);
  }
  const t = table(header, rows, ["---", ...header.slice(1).map(() => "--:")]);
  const lines = ["## Per-class accuracy", ""];
  if (C > 20) {
    lines.push(`<details><summary>${C} classes (click to expand)</summary>`, "", t, "", "</details>");
  } else {
    lines.push(t);
  }
  return lines.join("\n");
}

function stagesSection(stages: StageRun[] | undefined): string {
  const lines = ["## Stages of this run", ""];
  if (!stages || stages.length === 0) {
    lines.push("_The runner did not record the stages._");
    return lines.join("\n");
  }
  const rows = stages.map((s) => [
    f.cell(s.name),
    code(s.script),
    s.status === "ran" ? "ran" : "fresh (up to date, not rerun)",
    f.duration(s.duration_s),
  ]);
  const ran = stages.filter((s) => s.status === "ran");
  const total = ran.reduce((a, s) => a + (num(s.duration_s) ?? 0), 0);
  lines.push(
    table(["Stage", "Script", "Status", "Time"], rows, ["---", "---", "---", "--:"]),
    "",
    `${ran.length} of ${stages.length} stages ran (${f.duration(total)} in total)${
      ran.length < stages.length ? "; the others were up to date" : ""
    }.`,
  );
  return lines.join("\n");
}

function environmentSection(input: ReportInput): string {
  const e = input.environment;
  const lines = ["## Environment", "", `- Profile: ${code(input.profile)}`];
  if (!e) {
    lines.push("- Backend and versions: not recorded");
    return lines.join("\n");
  }
  lines.push(
    `- Backend: ${code(e.backend)}${e.threads ? `, ${e.threads} threads` : ""}`,
    `- Deno ${f.cell(e.deno)}, TensorFlow.js ${f.cell(e.tfjs)}`,
    `- Git commit: ${e.git_commit ? code(e.git_commit) : "not recorded"}`,
  );
  return lines.join("\n");
}

function configSection(config: Record<string, unknown>): string {
  const yaml = YAML.stringify(config, { sortMapEntries: true, lineWidth: 0 });
  return [
    "## Resolved configuration",
    "",
    "<details><summary>The configuration this run used, after the profile overlay (YAML)</summary>",
    "",
    fence(yaml, "yaml"),
    "",
    "</details>",
  ].join("\n");
}

function checkDataset(ds: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(ds)) {
    throw new Error(
      `renderReport: dataset name "${ds}" must be letters, digits, '.', '_' or '-' (it names reports/<ds>/).`,
    );
  }
}

/**
 * Renders the report. Pure: the same input gives byte-identical markdown and figures. Async only because
 * vega's headless renderer is.
 *
 * @example
 * ```ts
 * const { markdown, files } = await renderReport(input);
 * await writeReport("reports", input.dataset, { markdown, files });
 * ```
 */
export async function renderReport(input: ReportInput): Promise<ReportOutput> {
  checkDataset(input.dataset);
  const ds = input.dataset;
  const split = input.split ?? "test";
  const { teacher, students } = input.metrics;
  if (!teacher) throw new Error(`renderReport: metrics for ${ds} have no "teacher" entry.`);
  const modes = orderedModes(Object.keys(students ?? {}));
  const main = modes[0];
  const facts = deriveRunFacts(input.config ?? {}, input.run);
  const cfgClasses = get(input.config, "classes");
  const classes = input.classes ??
    (Array.isArray(cfgClasses) && cfgClasses.every((c) => typeof c === "string") ? cfgClasses : undefined);
  const pub = resolvePublished(ds, input.config ?? {}, input.published);
  const files = new Map<string, string>();
  const img = (file: string, alt: string) => `![${alt}](${ds}/${file})`;

  const md: string[] = [];
  md.push(`# funmatch report: ${ds}`, "", verdict(input, facts, split), "");
  md.push(headline(input, facts, modes, split), "");
  md.push(publishedSection(input, facts, pub), "");

  // Training curves.
  md.push("## Training curves", "");
  const curves: [string, "loss" | "val_top1" | "val_agreement", Record<string, unknown>][] = [];
  const loss = curveSeries(input, modes, "loss");
  const vtop = curveSeries(input, modes, "val_top1");
  const vagr = curveSeries(input, modes, "val_agreement");
  if (loss.length) {
    curves.push([
      "loss.svg",
      "loss",
      curveSpec(loss, { title: "Training loss (each model's own objective)", yTitle: "loss", facet: true }),
    ]);
  }
  if (vtop.length) {
    curves.push([
      "val_top1.svg",
      "val_top1",
      curveSpec(vtop, { title: "Validation top-1", yTitle: "top-1", percent: true }),
    ]);
  }
  if (vagr.length) {
    curves.push([
      "val_agreement.svg",
      "val_agreement",
      curveSpec(vagr, {
        title: "Validation agreement with the teacher (top-1)",
        yTitle: "agreement",
        percent: true,
      }),
    ]);
  }
  if (curves.length === 0) md.push("_No training history was recorded._", "");
  const alts = {
    loss: "Training loss vs step",
    val_top1: "Validation top-1 vs step",
    val_agreement: "Validation agreement with the teacher vs step",
  };
  for (const [file, key, spec] of curves) {
    files.set(file, await renderVegaLite(spec));
    md.push(img(file, alts[key]), "");
  }
  if (loss.length) {
    md.push(
      "Each panel has its own scale: the teacher and a `labels` student minimise cross-entropy on the labels, " +
        "the distilled students the KL to the teacher, so losses are not comparable across panels. Steps are " +
        "each model's own training steps.",
      "",
    );
  }

  // Confusion matrix of the main student.
  if (main && students[main].confusion?.length) {
    md.push(`## Confusion matrix (student ${code(main)})`, "");
    files.set(
      "confusion.svg",
      await renderVegaLite(
        confusionSpec(students[main].confusion, { title: `Confusion: student ${main}`, classes }),
      ),
    );
    md.push(
      img("confusion.svg", `Confusion matrix of the ${main} student`),
      "",
      "Rows are true classes, columns predicted ones; the colour is the share of the row's images.",
      "",
    );
  }

  md.push(perClassSection(input, modes, classes), "");

  // Cache nothing.
  md.push("## Why no teacher prediction is cached", "");
  if (input.cacheNothing) {
    const cn = input.cacheNothing;
    const bars = [{ label: "teacher top-1 moves between two crops", value: cn.top1_change_rate }];
    if (main) {
      bars.push({
        label: `student disagrees with teacher (${split})`,
        value: 1 - students[main].agreement_top1,
      });
    }
    files.set(
      "cache_nothing.svg",
      await renderVegaLite(ratesSpec(bars, { title: "The teacher's answer depends on the crop" })),
    );
    md.push(
      img("cache_nothing.svg", "How often the teacher's top-1 changes between two inception crops"),
      "",
      `No teacher prediction is cached: over ${
        f.count(cn.pairs, "pair")
      } of inception crops of the same validation ` +
        `image the teacher's top-1 changed ${
          f.pct(cn.top1_change_rate)
        } of the time (mean KL between the two ` +
        `answers ${f.dec(cn.mean_kl)} nats), ${
          cn.top1_change_rate >= 0.05
            ? "so a stored answer would be the wrong target for many crops the student trains on"
            : "here the answers rarely moved on so few images, but a stored answer still could not follow " +
              "the mixup, which blends every training batch"
        }; function matching recomputes the teacher on exactly the crop and mixup the student sees.`,
      "",
    );
  } else {
    md.push("_The cache-nothing measurement was not run._", "");
  }

  md.push(stagesSection(input.stages), "");
  md.push(configSection(input.config ?? {}), "");
  md.push(environmentSection(input), "");

  md.push("## Pipeline", "");
  if (input.manifest?.stages?.length) {
    md.push(fence(mermaidFlowchart(input.manifest.stages), "mermaid"));
  } else if (input.stages?.length) {
    md.push(fence(mermaidChain(input.stages.map((s) => s.name)), "mermaid"));
  } else {
    md.push("_No manifest was given._");
  }
  return { markdown: md.join("\n") + "\n", files };
}

/**
 * `reports/README.md`: one row per dataset, linking to its report. Pure; rows sorted by dataset.
 *
 * @example
 * ```ts
 * renderIndex([{ dataset: "cifar10", profile: "cpu", teacher_top1: 0.80, student_top1: 0.72,
 *                agreement: 0.79, compression: 4.39 }]);
 * ```
 */
export function renderIndex(entries: IndexEntry[]): string {
  const rows = [...entries]
    .sort((a, b) => (a.dataset < b.dataset ? -1 : a.dataset > b.dataset ? 1 : 0))
    .map((e) => [
      `[${f.cell(e.dataset)}](${encodeURIComponent(e.dataset)}.md)`,
      code(e.profile),
      f.pct(e.teacher_top1),
      f.pct(e.student_top1),
      f.pct(e.agreement),
      f.times(e.compression),
    ]);
  return [
    "# funmatch reports",
    "",
    "One report per dataset: a teacher distilled into a small student by function matching. Student numbers " +
    "are the `function_matching` student's; agreement is the share of test images where its top-1 is the " +
    "teacher's; compression is teacher parameters / student parameters.",
    "",
    rows.length
      ? table(
        ["Dataset", "Profile", "Teacher top-1", "Student top-1", "Agreement", "Compression"],
        rows,
        ["---", "---", "--:", "--:", "--:", "--:"],
      )
      : "_No reports yet._",
    "",
  ].join("\n");
}

/**
 * `deno task bench [--quick] [--only models,input,onnx,status]`: every speed figure funmatch promises, measured
 * here, written to `reports/bench.md` (printed too) and `reports/bench.json`.
 *
 * Sections, each its own module (runnable alone): models (training/inference img/s and GFLOP/s per backend),
 * the input pipeline (decode + augmentation rate and peak memory), ONNX Runtime for the frozen teacher, and a
 * no-op `status` over a gigabyte of TFRecords. `bench.json` is the list of model rows issue 5 specifies
 * (`model`, `backend`, `threads`, `batch`, `train_img_s`, `infer_img_s`, plus context); the other sections'
 * rows sit under their names in `reports/bench.sections.json`.
 * @module
 */
import os from "node:os";
import { parseArgs } from "parse-args";
import { benchModels } from "./models.ts";
import { benchInputPipeline } from "./input_pipeline.ts";
import { benchOnnx } from "./onnx.ts";
import { benchStatus } from "./status.ts";

const SECTIONS = ["models", "input", "onnx", "status"] as const;
type Section = typeof SECTIONS[number];

const { values } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean" }, only: { type: "string" }, out: { type: "string" } },
});
const quick = values.quick ?? false;
const only = (values.only?.split(",") ?? [...SECTIONS]) as Section[];
for (const s of only) {
  if (!SECTIONS.includes(s)) {
    console.error(`bench: unknown section "${s}" in --only (expected ${SECTIONS.join(", ")}).`);
    Deno.exit(2);
  }
}
const outDir = values.out ?? new URL("../reports", import.meta.url).pathname;

const started = new Date();
const parts: string[] = [
  "# funmatch benchmark",
  "",
  `Measured ${started.toISOString().slice(0, 16).replace("T", " ")} UTC on ${os.cpus().length} cores ` +
  `(${os.cpus()[0]?.model ?? "unknown CPU"}), ${
    (os.totalmem() / 2 ** 30).toFixed(0)
  } GiB, Deno ${Deno.version.deno}` +
  `${quick ? ", `--quick` (fewer runs)" : ""}; load average ${Deno.loadavg()[0].toFixed(2)} at the start. ` +
  "Figures are medians of several timed runs after warm-up steps; another process on the machine lowers them.",
];
const sectionRows: Record<string, unknown> = {};
let modelRows: unknown[] = [];

const run = async (title: string, intro: string, f: () => Promise<{ markdown: string; rows: unknown[] }>) => {
  console.error(`bench: ${title} …`);
  const t0 = performance.now();
  const { markdown, rows } = await f();
  const sec = (performance.now() - t0) / 1000;
  parts.push("", `## ${title}`, "", intro, "", markdown, "", `_(${sec.toFixed(0)} s)_`);
  return rows;
};

if (only.includes("models")) {
  modelRows = await run(
    "Training and inference speed",
    "One training step (forward, backward, Adam) and one forward pass of random weights on random images; " +
      "`wasm` runs convolutions on XNNPACK (TF.js as shipped, with our gradient kernels), `wasm+native` on the " +
      "kernels lib/kernels/native compiles for this CPU; " +
      "GFLOP/s counts the forward convolutions and dense layer (training: 3×). The `cpu` profile's models, " +
      "and the reference ResNet of `shared/research/tfjs-on-deno.md` (`reference-s1`).",
    () => benchModels({ quick }),
  );
}
if (only.includes("input")) {
  sectionRows.input_pipeline = await run(
    "Input pipeline",
    "Decode + augmentation + batching as training consumes it, in the pipeline's Worker.",
    () => benchInputPipeline(),
  );
}
if (only.includes("onnx")) {
  sectionRows.onnx = await run(
    "The frozen teacher on ONNX Runtime",
    "What running the teacher's forward pass on ORT (in a Worker, overlapped with the student's step) buys.",
    () => benchOnnx(quick ? { rounds: 2 } : {}),
  );
}
if (only.includes("status")) {
  sectionRows.status = await run(
    "A no-op `status` over a gigabyte",
    "How long the runner takes to decide that nothing needs to run.",
    () => benchStatus(quick ? { repeats: 1 } : {}),
  );
}

const markdown = parts.join("\n") + "\n";
await Deno.mkdir(outDir, { recursive: true });
const write = async (name: string, text: string) => {
  const tmp = `${outDir}/.${name}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, `${outDir}/${name}`);
};
// A partial run (--only) keeps the other files' figures as they were.
if (only.includes("models")) await write("bench.json", JSON.stringify(modelRows, null, 2) + "\n");
if (Object.keys(sectionRows).length) {
  await write("bench.sections.json", JSON.stringify(sectionRows, null, 2) + "\n");
}
await write("bench.md", markdown);
console.log(markdown);
console.error(`bench: wrote ${outDir}/bench.md`);

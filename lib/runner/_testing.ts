/**
 * A tiny pipeline in a temp folder for the runner's tests: four fast stage scripts that read their deps
 * and write their outs atomically, shared modules to edit, a raw input file, a manifest and a config.
 *
 * Why in lib/runner: the runner's tests (tests/runner_*_test.ts) all need the same small repo, and the
 * runner must be testable without the real config, datasets or TF.js. Every stage appends its name to
 * `runs.txt` in the root so a test can see exactly which stages ran, in which order.
 *
 * Stage behaviour can be changed through environment variables the runner passes through:
 * `FIXTURE_HANG=<stage>` makes that stage write its pid to `hang.pid` and wait to be killed;
 * `FIXTURE_FAIL=<stage>` makes it exit 3; `FIXTURE_NO_OUT=<stage>` makes it exit 0 without writing outs;
 * `FIXTURE_EDIT_DEP=<stage>` makes it append to its first input file while it runs.
 */

/** The fixture manifest (both list styles, quoted and plain `{dataset}` paths). */
export const FIXTURE_MANIFEST = `# a small pipeline for the runner's tests
stages:
  fetch:
    script: pipeline/01_fetch.ts
    deps: [raw/input.txt]
    params: [source]
    outs: [data/{dataset}/fetched]
  teacher:
    script: pipeline/02_teacher.ts
    deps:
      - data/{dataset}/fetched
    params: [seed, teacher.*]
    outs:
      - data/{dataset}/teacher
  student:
    script: pipeline/03_student.ts
    deps: ["data/{dataset}/teacher/w.txt", "data/{dataset}/fetched"]
    params: [seed, student.lr]
    outs: ["data/{dataset}/student"]
  report:
    script: pipeline/04_report.ts
    deps: ["data/{dataset}/student"]
    outs: ["reports/{dataset}.md"]
`;

/** The fixture's resolved config. */
export const FIXTURE_CONFIG = {
  source: "raw",
  seed: 0,
  teacher: { lr: 0.01, epochs: 2 },
  student: { lr: 0.1, epochs: 3 },
  unused: { key: 1 },
};

const STAGE_LIB = `// Shared by every fixture stage: read deps, write outs atomically, log the run.
export function stageName(): string { return Deno.env.get("FUNMATCH_STAGE") ?? "?"; }
export async function behave(input?: string): Promise<boolean> {
  const me = stageName();
  await Deno.writeTextFile("runs.txt", me + "\\n", { append: true });
  if (Deno.env.get("FIXTURE_FAIL") === me) { console.error(me + ": failing on purpose"); Deno.exit(3); }
  if (Deno.env.get("FIXTURE_EDIT_DEP") === me && input) await Deno.writeTextFile(input, "edited during run\\n", { append: true });
  if (Deno.env.get("FIXTURE_HANG") === me) {
    await Deno.writeTextFile("hang.pid", String(Deno.pid));
    await new Promise((r) => setTimeout(r, 60_000));
  }
  return Deno.env.get("FIXTURE_NO_OUT") !== me;
}
export async function writeOut(path: string, text: string): Promise<void> {
  await Deno.mkdir(path.split("/").slice(0, -1).join("/"), { recursive: true });
  await Deno.writeTextFile(path + ".tmp-" + Deno.pid, text);
  await Deno.rename(path + ".tmp-" + Deno.pid, path);
}
`;

const FILES: Record<string, string> = {
  "raw/input.txt": "hello\nworld\n",
  "lib/stage.ts": STAGE_LIB,
  "lib/common.ts": `export const salt = "s1";\n`,
  "lib/teacher_only.ts":
    `// teacher maths\nexport function teach(s: string): string { return s.toUpperCase(); }\n`,
  "pipeline/01_fetch.ts": `import { behave, writeOut } from "../lib/stage.ts";
const ds = Deno.args[0];
if (await behave("raw/input.txt")) {
  const text = await Deno.readTextFile("raw/input.txt");
  await writeOut(\`data/\${ds}/fetched/data.txt\`, text);
  await writeOut(\`data/\${ds}/fetched/args.txt\`, Deno.args.join(" ") + " " + (Deno.env.get("FUNMATCH_DEPS_HASH") ?? "").slice(0, 8));
}
console.log("fetch done");
`,
  "pipeline/02_teacher.ts": `import { behave, writeOut } from "../lib/stage.ts";
import { teach } from "../lib/teacher_only.ts";
import { salt } from "../lib/common.ts";
const ds = Deno.args[0];
if (await behave(\`data/\${ds}/fetched/data.txt\`)) {
  const text = await Deno.readTextFile(\`data/\${ds}/fetched/data.txt\`);
  await writeOut(\`data/\${ds}/teacher/w.txt\`, teach(text) + salt);
}
`,
  "pipeline/03_student.ts": `import { behave, writeOut } from "../lib/stage.ts";
import { salt } from "../lib/common.ts";
const ds = Deno.args[0];
if (await behave(\`data/\${ds}/teacher/w.txt\`)) {
  const text = await Deno.readTextFile(\`data/\${ds}/teacher/w.txt\`);
  await writeOut(\`data/\${ds}/student/s.txt\`, text.length + ":" + text.slice(0, 5) + salt);
}
`,
  "pipeline/04_report.ts": `import { behave, writeOut } from "../lib/stage.ts";
const ds = Deno.args[0];
if (await behave()) {
  const s = await Deno.readTextFile(\`data/\${ds}/student/s.txt\`);
  const lock = JSON.parse(await Deno.readTextFile(\`data/\${ds}/pipeline.lock\`));
  await writeOut(\`reports/\${ds}.md\`, "# report\\n" + s + "\\nran: " + Object.entries(lock.last_run.stages).filter(([, v]) => v === "ran").map(([k]) => k).join(",") + "\\n");
}
`,
};

/** A fixture repo on disk. */
export interface Fixture {
  root: string;
  /** Path of a JSON file `{ config, profile }` for the CLI's --resolved-config. */
  configFile: string;
  write(rel: string, text: string): Promise<void>;
  read(rel: string): Promise<string>;
  /** Stage names that ran since the last call (from runs.txt), then clears it. */
  runs(): Promise<string[]>;
  cleanup(): Promise<void>;
}

/** Creates a fresh fixture repo in a temp folder (optionally with another manifest text). */
export async function makeFixture(manifest = FIXTURE_MANIFEST): Promise<Fixture> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "funmatch-runner-" }));
  const write = async (rel: string, text: string) => {
    const abs = `${root}/${rel}`;
    await Deno.mkdir(abs.slice(0, abs.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(abs, text);
  };
  for (const [rel, text] of Object.entries(FILES)) await write(rel, text);
  await write("pipeline/manifest.yaml", manifest);
  const configFile = `${root}/resolved.json`;
  await Deno.writeTextFile(configFile, JSON.stringify({ config: FIXTURE_CONFIG, profile: "cpu" }));
  return {
    root,
    configFile,
    write,
    read: (rel) => Deno.readTextFile(`${root}/${rel}`),
    runs: async () => {
      let text = "";
      try {
        text = await Deno.readTextFile(`${root}/runs.txt`);
        await Deno.remove(`${root}/runs.txt`);
      } catch {
        // nothing ran
      }
      return text.split("\n").filter(Boolean);
    },
    cleanup: () => Deno.remove(root, { recursive: true }),
  };
}

// The runner end to end on a four-stage fixture in a temp dir: what reruns after each kind of edit, and why.
import assert from "assert";
import { type PipelineOptions, pipelineStatus, runPipeline } from "../lib/runner/pipeline.ts";
import type { LockFile } from "../lib/runner/lock.ts";
import { type Fixture, FIXTURE_CONFIG, makeFixture } from "../lib/runner/_testing.ts";

type Extra = Partial<PipelineOptions>;

async function run(f: Fixture, extra: Extra = {}, config: unknown = FIXTURE_CONFIG) {
  const lines: string[] = [];
  const chunks: Uint8Array[] = [];
  const r = await runPipeline({
    root: f.root,
    dataset: "ds",
    config,
    profile: "cpu",
    log: (l) => void lines.push(l),
    stdout: (c) => void chunks.push(c.slice()),
    stderr: (c) => void chunks.push(c.slice()),
    ...extra,
  });
  const output = chunks.map((c) => new TextDecoder().decode(c)).join("");
  return { r, lines: lines.join("\n"), runs: await f.runs(), output };
}

async function status(f: Fixture, extra: Extra = {}, config: unknown = FIXTURE_CONFIG) {
  const s = await pipelineStatus({ root: f.root, dataset: "ds", config, profile: "cpu", ...extra });
  const by = Object.fromEntries(s.verdicts.map((v) => [v.name, v]));
  return { ...s, by, stale: s.verdicts.filter((v) => v.state === "stale").map((v) => v.name) };
}

const lockOf = async (f: Fixture) => JSON.parse(await f.read("data/ds/pipeline.lock")) as LockFile;

async function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  Deno.env.set(name, value);
  try {
    return await fn();
  } finally {
    Deno.env.delete(name);
  }
}

Deno.test("runner: first run, no-op run, lock and last_run", async () => {
  const f = await makeFixture();
  try {
    const first = await run(f);
    assert.equal(first.r.exitCode, 0);
    assert.deepEqual(first.runs, ["fetch", "teacher", "student", "report"]);
    assert.match(first.lines, /run {4}fetch: never run \(no entry in data\/ds\/pipeline\.lock\)/);
    assert.match(first.output, /fetch done/); // stage stdout passed through
    const lock = await lockOf(f);
    assert.deepEqual(Object.keys(lock.stages), ["fetch", "teacher", "student", "report"]);
    const t = lock.stages.teacher;
    assert.deepEqual(Object.keys(t.code), [
      "lib/common.ts",
      "lib/stage.ts",
      "lib/teacher_only.ts",
      "pipeline/02_teacher.ts",
    ]);
    assert.deepEqual(t.params["teacher.*"].value, { lr: 0.01, epochs: 2 });
    assert.deepEqual(Object.keys(t.deps), ["data/ds/fetched"]);
    assert.deepEqual(Object.keys(t.outs["data/ds/teacher"].files!), ["w.txt"]);
    assert.equal(t.profile, "cpu");
    assert.ok(t.duration_s > 0 && !Number.isNaN(Date.parse(t.ran_at)));
    assert.deepEqual(lock.last_run!.stages, { fetch: "ran", teacher: "ran", student: "ran", report: "ran" });
    assert.equal(lock.last_run!.profile, "cpu");
    // The report stage saw itself and everything before it as "ran" in last_run while it ran.
    assert.match(await f.read("reports/ds.md"), /ran: fetch,teacher,student,report/);
    // Stage argv and FUNMATCH_DEPS_HASH.
    const args = await f.read("data/ds/fetched/args.txt");
    assert.equal(args, `ds --profile cpu ${lock.stages.fetch.deps_hash.slice(0, 8)}`);
    assert.match(
      await f.read("data/ds/logs/fetch.log"),
      /=== .* deno run -A pipeline\/01_fetch\.ts ds --profile cpu ===\nfetch done\n/,
    );

    const second = await run(f);
    assert.deepEqual(second.runs, []);
    assert.match(second.lines, /all 4 stages fresh, nothing to run/);
    const lock2 = await lockOf(f);
    assert.deepEqual(lock2.stages, lock.stages);
    assert.deepEqual(lock2.last_run!.stages, {
      fetch: "fresh",
      teacher: "fresh",
      student: "fresh",
      report: "fresh",
    });
    assert.notEqual(lock2.last_run!.started, undefined);
    const st = await status(f);
    assert.deepEqual(st.stale, []);
    assert.match(st.text, /all 4 stages fresh/);
  } finally {
    await f.cleanup();
  }
});

Deno.test("runner: code edits rerun exactly the importing stages; identical outs stop the cascade", async () => {
  const f = await makeFixture();
  try {
    await run(f);
    // A comment-only edit to a teacher-only module: teacher reruns, writes identical outs, student stays.
    await f.write("lib/teacher_only.ts", (await f.read("lib/teacher_only.ts")) + "// a comment\n");
    const st = await status(f);
    assert.deepEqual(st.stale, ["teacher"]);
    assert.match(
      st.by.teacher.reasons[0],
      /^code lib\/teacher_only\.ts changed \([0-9a-f]{8} → [0-9a-f]{8}\)$/,
    );
    assert.equal(st.by.student.state, "waits");
    assert.match(st.text, /student {2}fresh, but reruns if teacher reruns with different outs/);
    assert.deepEqual((await run(f)).runs, ["teacher"]);
    assert.deepEqual((await lockOf(f)).last_run!.stages, {
      fetch: "fresh",
      teacher: "ran",
      student: "fresh",
      report: "fresh",
    });

    // A module imported by teacher and student (not fetch, not report): exactly those two are stale.
    await f.write("lib/common.ts", `export const salt = "s2";\n`);
    const st2 = await status(f);
    assert.deepEqual(st2.stale, ["teacher", "student"]);
    assert.equal(st2.by.fetch.state, "fresh");
    assert.deepEqual((await run(f)).runs, ["teacher", "student", "report"]); // outs changed → report follows

    // A new import shows up as such.
    await f.write("lib/extra.ts", "export const e = 1;\n");
    await f.write(
      "pipeline/03_student.ts",
      `import "../lib/extra.ts";\n` + (await f.read("pipeline/03_student.ts")),
    );
    const st3 = await status(f);
    assert.deepEqual(st3.stale, ["student"]);
    assert.ok(st3.by.student.reasons.includes("code lib/extra.ts is newly imported"), st3.text);
  } finally {
    await f.cleanup();
  }
});

Deno.test("runner: params, inputs and outs", async (t) => {
  const f = await makeFixture();
  try {
    await run(f);
    await t.step("a params key only one stage declares", async () => {
      const cfg = structuredClone(FIXTURE_CONFIG);
      cfg.student.lr = 0.2;
      const st = await status(f, {}, cfg);
      assert.deepEqual(st.stale, ["student"]);
      assert.deepEqual(st.by.student.reasons, ["params student.lr: 0.1 → 0.2"]);
      cfg.student.lr = 0.1;
      cfg.unused.key = 2; // nobody declares it
      assert.deepEqual((await status(f, {}, cfg)).stale, []);
      cfg.teacher.epochs = 5; // inside teacher.*
      const st2 = await status(f, {}, cfg);
      assert.deepEqual(st2.by.teacher.reasons, ["params teacher.epochs: 2 → 5"]);
      // teacher reruns but (not reading that key) writes the same outs: nothing downstream runs.
      assert.deepEqual((await run(f, {}, cfg)).runs, ["teacher"]);
      assert.deepEqual((await status(f, {}, cfg)).stale, []);
      assert.deepEqual((await status(f)).stale, ["teacher"]); // and back
      await run(f);
      await f.runs();
    });
    await t.step("an input file", async () => {
      await f.write("raw/input.txt", "greetings\n");
      const st = await status(f);
      assert.deepEqual(st.stale, ["fetch"]);
      assert.match(st.by.fetch.reasons[0], /^input raw\/input\.txt changed \([0-9a-f]{8} → [0-9a-f]{8}\)$/);
      assert.deepEqual((await run(f)).runs, ["fetch", "teacher", "student", "report"]);
    });
    await t.step("an edited out", async () => {
      const before = await f.read("data/ds/student/s.txt");
      await f.write("data/ds/student/s.txt", "tampered");
      const st = await status(f);
      assert.deepEqual(st.stale, ["student", "report"]);
      assert.match(
        st.by.student.reasons[0],
        /^out data\/ds\/student\/s\.txt changed since the stage wrote it \(/,
      );
      assert.match(
        st.by.report.reasons[0],
        /^input data\/ds\/student\/s\.txt changed .* \(made by student\)$/,
      );
      // student rewrites what it wrote before, so report (whose recorded input is the original) is fresh again.
      assert.deepEqual((await run(f)).runs, ["student"]);
      assert.equal(await f.read("data/ds/student/s.txt"), before);
    });
    await t.step("a deleted out", async () => {
      await Deno.remove(`${f.root}/data/ds/teacher`, { recursive: true });
      const st = await status(f);
      assert.deepEqual(st.by.teacher.reasons, ["out data/ds/teacher is missing"]);
      assert.deepEqual(st.by.student.reasons, ["input data/ds/teacher/w.txt is missing (made by teacher)"]);
      assert.deepEqual((await run(f)).runs, ["teacher"]);
    });
    await t.step("an extra file in an out folder", async () => {
      await f.write("data/ds/teacher/stray.txt", "x");
      const st = await status(f);
      assert.deepEqual(st.by.teacher.reasons, ["out data/ds/teacher/stray.txt was added"]);
      assert.deepEqual((await run(f)).runs, ["teacher"]); // its outs are removed before it runs
      assert.deepEqual([...Deno.readDirSync(`${f.root}/data/ds/teacher`)].map((e) => e.name), ["w.txt"]);
    });
    await t.step("a dep edited while its stage runs leaves it stale (pre-run hashes recorded)", async () => {
      await f.write("raw/input.txt", "before the run\n");
      const r = await withEnv("FIXTURE_EDIT_DEP", "fetch", () => run(f, { targets: ["fetch"] }));
      assert.deepEqual(r.runs, ["fetch"]);
      const lock = await lockOf(f);
      const { createHash } = await import("node:crypto");
      const pre = createHash("sha256").update("before the run\n").digest("hex");
      assert.equal(lock.stages.fetch.deps["raw/input.txt"].hash, pre);
      const st = await status(f);
      assert.equal(st.by.fetch.state, "stale");
      assert.match(st.by.fetch.reasons[0], /^input raw\/input\.txt changed/);
      await run(f);
      await f.runs();
    });
  } finally {
    await f.cleanup();
  }
});

Deno.test("runner: failures leave the lock alone and stop downstream", async () => {
  const f = await makeFixture();
  try {
    await run(f);
    const before = await lockOf(f);
    const studentOut = await f.read("data/ds/student/s.txt");
    await f.write("lib/common.ts", `export const salt = "s3";\n`);
    const r = await withEnv("FIXTURE_FAIL", "student", () => run(f));
    assert.equal(r.r.exitCode, 1);
    assert.deepEqual(r.runs, ["teacher", "student"]); // report never started
    assert.equal(r.r.failed?.stage, "student");
    assert.match(
      r.r.failed!.message,
      /^stage student \(pipeline\/03_student\.ts\) exited with code 3 after .* s; see data\/ds\/logs\/student\.log$/,
    );
    assert.match(r.output, /student: failing on purpose/);
    const after = await lockOf(f);
    assert.deepEqual(after.stages.student, before.stages.student);
    assert.notDeepEqual(after.stages.teacher, before.stages.teacher); // teacher succeeded and was recorded
    assert.equal(after.last_run!.failed, "student");
    assert.deepEqual(after.last_run!.stages, { fetch: "fresh", teacher: "ran" });
    // the failed stage's previous out is back, byte for byte, and nothing moved aside is left over
    assert.equal(await f.read("data/ds/student/s.txt"), studentOut);
    assert.deepEqual(
      [...Deno.readDirSync(`${f.root}/data/ds`)].map((e) => e.name).filter((n) => n.includes(".tmp-")),
      [],
    );
    assert.deepEqual((await run(f)).runs, ["student", "report"]);
    assert.ok(![...Deno.readDirSync(`${f.root}/data/ds`)].some((e) => e.name.includes(".tmp-")));

    // A stage that exits 0 without writing a declared out fails clearly.
    const r2 = await withEnv("FIXTURE_NO_OUT", "report", () => run(f, { targets: ["report"], force: true }));
    assert.equal(r2.r.exitCode, 1);
    assert.match(
      r2.r.failed!.message,
      /exited 0 but did not write its out reports\/ds\.md \(pipeline\/manifest\.yaml:23\)/,
    );
    // its previous out was put back, so the lock's entry still describes what is on disk
    assert.deepEqual((await status(f)).by.report.reasons, []);
  } finally {
    await f.cleanup();
  }
});

Deno.test("runner: --only, --from, --until, --force, --dry-run", async () => {
  const f = await makeFixture();
  try {
    await run(f);
    await f.write(
      "lib/teacher_only.ts",
      `export function teach(s: string): string { return s.toLowerCase(); }\n`,
    );

    const dry = await run(f, { dryRun: true });
    const lockBefore = await f.read("data/ds/pipeline.lock");
    assert.deepEqual(dry.runs, []);
    assert.match(dry.lines, /dry run: would run teacher\n/);
    assert.match(dry.lines, /teacher {2}stale\n\s+- code lib\/teacher_only\.ts changed/);
    assert.deepEqual(dry.r.plan!.map((v) => v.state), ["fresh", "stale", "waits", "waits"]);
    assert.equal(await f.read("data/ds/pipeline.lock"), lockBefore);

    // --only student: teacher is stale but not selected; student itself is fresh.
    assert.deepEqual((await run(f, { targets: ["student"], only: true })).runs, []);
    assert.deepEqual((await run(f, { targets: ["03"], only: true, force: true })).runs, ["student"]);
    // --until teacher: teacher runs, student (now stale) does not.
    assert.deepEqual((await run(f, { until: "teacher" })).runs, ["teacher"]);
    assert.deepEqual((await status(f)).stale, ["student"]);
    // --from student: student and report.
    assert.deepEqual((await run(f, { from: "student" })).runs, ["student", "report"]);
    // --force on a target forces it, not its upstream; without targets it forces everything selected.
    assert.deepEqual((await run(f, { targets: ["teacher"], force: true })).runs, ["teacher"]);
    assert.deepEqual((await run(f, { until: "teacher", force: true })).runs, ["fetch", "teacher"]);
    // Targets bring their stale upstream along.
    await f.write("raw/input.txt", "new\n");
    assert.deepEqual((await run(f, { targets: ["teacher"] })).runs, ["fetch", "teacher"]);

    // --only with a missing input is an error before anything runs.
    await Deno.remove(`${f.root}/data/ds/fetched`, { recursive: true });
    await assert.rejects(
      () => run(f, { targets: ["teacher"], only: true }),
      /stage "teacher" cannot run: its input data\/ds\/fetched \(pipeline\/manifest\.yaml:11\) is missing; it is made by fetch, which this run does not include \(drop --only to build it\)/,
    );
    assert.deepEqual(await f.runs(), []);
  } finally {
    await f.cleanup();
  }
});

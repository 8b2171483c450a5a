// The runner CLI as a process: exit codes, Ctrl-C forwarding, SIGKILLed stages, one runner per dataset.
import assert from "assert";
import { makeFixture } from "../lib/runner/_testing.ts";
import type { LockFile } from "../lib/runner/lock.ts";
import { processAlive } from "../lib/runner/pidlock.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${REPO}/lib/runner/cli.ts`;

function cli(root: string, args: string[], env: Record<string, string> = {}) {
  const [cmd, ...rest] = args;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLI,
      cmd,
      "ds",
      "--root",
      root,
      "--resolved-config",
      `${root}/resolved.json`,
      ...rest,
    ],
    cwd: REPO,
    env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  });
}

async function runCli(root: string, args: string[], env: Record<string, string> = {}) {
  const out = await cli(root, args, env).output();
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: dec(out.stdout), stderr: dec(out.stderr) };
}

async function waitFor<T>(fn: () => T | null | undefined, what: string, ms = 15_000): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = fn();
    if (v !== null && v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function readPid(path: string): number | null {
  try {
    const n = Number(Deno.readTextFileSync(path));
    return n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Collects a child's output while it runs (so pipes never fill up). */
function collect(child: Deno.ChildProcess) {
  const text = { stdout: "", stderr: "" };
  const pump = async (s: ReadableStream<Uint8Array>, k: "stdout" | "stderr") => {
    for await (const c of s.pipeThrough(new TextDecoderStream())) text[k] += c;
  };
  const done = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
  return { text, done };
}

Deno.test("cli: Ctrl-C, a second runner, a SIGKILLed stage, a SIGKILLed runner", async () => {
  const f = await makeFixture();
  const lockOf = async () => JSON.parse(await f.read("data/ds/pipeline.lock")) as LockFile;
  const pidFile = `${f.root}/data/ds/.runner.pid`;
  try {
    // 1. Runner A hangs in teacher.
    const a = cli(f.root, ["run"], { FIXTURE_HANG: "teacher" }).spawn();
    const aOut = collect(a);
    const hang1 = await waitFor(() => readPid(`${f.root}/hang.pid`), "teacher to start");

    // 2. A second runner is refused and names A's pid; status still works (exit 0) and mentions it.
    const b = await runCli(f.root, ["run"]);
    assert.equal(b.code, 1);
    assert.match(
      b.stderr,
      new RegExp(
        `another runner \\(pid ${a.pid}\\) is working on this dataset \\(running stage teacher, pid ${hang1}\\)`,
      ),
    );
    const s = await runCli(f.root, ["status"]);
    assert.equal(s.code, 0);
    assert.match(s.stdout, new RegExp(`a runner, pid ${a.pid}, is working on ds`));
    assert.match(s.stdout, /teacher {2}stale\n\s+- never run/);

    // 3. Ctrl-C: forwarded to the stage, runner exits 130, no lock entry for teacher, pid file gone.
    Deno.kill(a.pid, "SIGINT");
    const aStatus = await a.status;
    await aOut.done;
    assert.equal(aStatus.code, 130, aOut.text.stderr);
    assert.match(aOut.text.stderr, /SIGINT: stopping stage/);
    assert.ok(!processAlive(hang1), "the stage got the SIGINT");
    let lock = await lockOf();
    assert.ok(lock.stages.fetch && !lock.stages.teacher);
    assert.equal(lock.last_run!.interrupted, true);
    assert.deepEqual(lock.last_run!.stages, { fetch: "ran" });
    assert.equal(readPid(pidFile), null);
    await f.runs();

    // 4. SIGKILL of the stage: the runner fails naming it, records nothing for it.
    const c = cli(f.root, ["run"], { FIXTURE_HANG: "teacher" }).spawn();
    const cOut = collect(c);
    const hang2 = await waitFor(
      () => readPid(`${f.root}/hang.pid`) !== hang1 ? readPid(`${f.root}/hang.pid`) : null,
      "teacher",
    );
    Deno.kill(hang2, "SIGKILL");
    assert.equal((await c.status).code, 1);
    await cOut.done;
    assert.match(cOut.text.stderr, /error: stage teacher \(pipeline\/02_teacher\.ts\) was killed by SIGKILL/);
    lock = await lockOf();
    assert.ok(!lock.stages.teacher);
    assert.equal(lock.last_run!.failed, "teacher");
    assert.deepEqual(await f.runs(), ["teacher"]);

    // 5. SIGKILL of the runner while its stage runs: the orphaned stage still holds the dataset.
    const d = cli(f.root, ["run"], { FIXTURE_HANG: "teacher" }).spawn();
    const dOut = collect(d);
    const hang3 = await waitFor(
      () => readPid(`${f.root}/hang.pid`) !== hang2 ? readPid(`${f.root}/hang.pid`) : null,
      "teacher",
    );
    await waitFor(
      () => Deno.readTextFileSync(pidFile).includes(`child ${hang3}`) || null,
      "pid file to name the stage",
    );
    Deno.kill(d.pid, "SIGKILL");
    await d.status;
    await dOut.done;
    const e = await runCli(f.root, ["run"]);
    assert.equal(e.code, 1);
    assert.match(
      e.stderr,
      new RegExp(`the runner is gone but its stage teacher is still running as pid ${hang3}`),
    );
    Deno.kill(hang3, "SIGKILL");
    await waitFor(() => (processAlive(hang3) ? null : true), "the orphan to die");
    await f.runs();

    // 6. Now the dead holder's file is taken over and teacher (never recorded) reruns.
    const g = await runCli(f.root, ["run"]);
    assert.equal(g.code, 0, g.stderr);
    assert.deepEqual(await f.runs(), ["teacher", "student", "report"]);
    assert.equal(readPid(pidFile), null);
    const h = await runCli(f.root, ["run"]);
    assert.match(h.stderr, /ds: profile cpu\n(fresh .*\n){4}all 4 stages fresh, nothing to run/);
  } finally {
    await f.cleanup();
  }
});

Deno.test("cli: usage, manifest errors with lines, status output", async () => {
  const f = await makeFixture();
  try {
    const bad = await runCli(f.root, ["walk"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /expected "run" or "status", got "walk"/);
    assert.equal((await runCli(f.root, ["run", "--frobnicate"])).code, 2);

    // Without --resolved-config the real config module decides: an unknown dataset is one sentence.
    const nosuch = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "status", "no-such-set", "--profile", "cpu"],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(nosuch.code, 1);
    assert.match(new TextDecoder().decode(nosuch.stderr), /^error: .*pipeline\/datasets\/no-such-set\.yaml/m);
    await Deno.stat(`${REPO}/data/no-such-set`).then(() => assert.fail("created data/no-such-set"), () => {});

    const manifest = await f.read("pipeline/manifest.yaml");
    await f.write(
      "pipeline/manifest.yaml",
      manifest.replace("script: pipeline/03_student.ts", "script: pipeline/03_nope.ts"),
    );
    const m = await runCli(f.root, ["run"]);
    assert.equal(m.code, 1);
    assert.match(
      m.stderr,
      /error: pipeline\/manifest\.yaml:16: stage "student" script pipeline\/03_nope\.ts does not exist/,
    );
    assert.deepEqual(await f.runs(), []); // nothing ran
    await f.write("pipeline/manifest.yaml", manifest);

    const unknown = await runCli(f.root, ["run", "distill"]);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /error: unknown stage "distill": pipeline\/manifest\.yaml defines fetch \(01\) at line 3/,
    );

    const st = await runCli(f.root, ["status", "--profile", "smoke"]);
    assert.equal(st.code, 0);
    assert.match(st.stdout, /^ds: profile smoke\n/);
    assert.match(st.stdout, /fetch {4}stale\n\s+- never run \(no entry in data\/ds\/pipeline\.lock\)/);
    assert.match(st.stdout, /4 of 4 stages stale/);

    const r = await runCli(f.root, ["run", "--profile", "smoke", "--source", "raw2", "--set", "a.b=1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (await f.read("data/ds/fetched/args.txt")).split(" ").slice(0, 7).join(" "),
      "ds --profile smoke --source raw2 --set a.b=1",
    );
    const lock = JSON.parse(await f.read("data/ds/pipeline.lock")) as LockFile;
    assert.equal(lock.stages.fetch.profile, "smoke");
    assert.equal(lock.last_run!.profile, "smoke");
    // --backend is --set backend=…, passed on to every stage
    const rb = await runCli(f.root, ["run", "fetch", "--profile", "smoke", "--backend", "cpu", "--force"]);
    assert.equal(rb.code, 0, rb.stderr);
    assert.match(await f.read("data/ds/fetched/args.txt"), /^ds --profile smoke --set backend=cpu/);
    // status under another profile than the last run's says so, instead of leaving "everything stale" unexplained
    const other = await runCli(f.root, ["status", "--profile", "cpu"]);
    assert.equal(other.code, 0);
    assert.match(
      other.stdout,
      /\(the last run used --profile smoke: give status the same --profile and --source/,
    );
    const same = await runCli(f.root, ["status", "--profile", "smoke"]);
    assert.doesNotMatch(same.stdout, /the last run used/);
  } finally {
    await f.cleanup();
  }
});

// Manifest parsing and checking: every error names the manifest line; order, addressing and selection.
import assert from "assert";
import {
  ancestors,
  bindManifest,
  descendants,
  findStage,
  ManifestError,
  parseManifest,
} from "../lib/runner/manifest.ts";
import { selectStages } from "../lib/runner/pipeline.ts";
import { checkParams } from "../lib/runner/stale.ts";
import { FIXTURE_CONFIG, FIXTURE_MANIFEST, makeFixture } from "../lib/runner/_testing.ts";

const FILE = "pipeline/manifest.yaml";

/** The problems thrown by fn (fails the test when it does not throw a ManifestError). */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ManifestError) return e.problems;
    throw e;
  }
  assert.fail("expected a ManifestError");
}

Deno.test("manifest: errors carry their YAML line", async (t) => {
  const f = await makeFixture();
  const bind = (text: string) => bindManifest(parseManifest(text, FILE), { root: f.root, dataset: "ds" });
  try {
    await t.step("unknown key in a stage", () => {
      const p = problems(() => bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n    outz: [x]\n"));
      assert.equal(p.length, 1);
      assert.match(p[0], /^pipeline\/manifest\.yaml:4: stage "a" has unknown key "outz"/);
    });
    await t.step("missing script", () => {
      const p = problems(() => bind("stages:\n  a:\n    script: pipeline/09_nope.ts\n    outs: [x]\n"));
      assert.match(p[0], /manifest\.yaml:3: stage "a" script pipeline\/09_nope\.ts does not exist/);
    });
    await t.step("stage without script", () => {
      const p = problems(() => bind("stages:\n  a:\n    outs: [x]\n"));
      assert.match(p[0], /manifest\.yaml:2: stage "a" has no `script:`/);
    });
    await t.step("wrong type", () => {
      const p = problems(() =>
        bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n    deps: raw/input.txt\n")
      );
      assert.match(p[0], /manifest\.yaml:4: stage "a" key "deps" must be a list/);
    });
    await t.step("a dep no stage or file provides", () => {
      const p = problems(() =>
        bind(
          "stages:\n  a:\n    script: pipeline/01_fetch.ts\n    deps:\n      - raw/missing.txt\n    outs: [o]\n",
        )
      );
      assert.match(
        p[0],
        /manifest\.yaml:5: stage "a" dep raw\/missing\.txt does not exist and no stage lists it/,
      );
    });
    await t.step("an out claimed by two stages (equal or nested)", () => {
      const text = `stages:
  a:
    script: pipeline/01_fetch.ts
    outs: ["data/{dataset}/x"]
  b:
    script: pipeline/02_teacher.ts
    outs:
      - data/{dataset}/x/sub
`;
      const p = problems(() => bind(text));
      assert.equal(p.length, 1);
      assert.match(
        p[0],
        /manifest\.yaml:8: out data\/ds\/x\/sub of stage "b" overlaps out data\/ds\/x of stage "a" \(line 4\)/,
      );
      const same = problems(() => bind(text.replace("data/{dataset}/x/sub", "data/{dataset}/x")));
      assert.match(
        same[0],
        /manifest\.yaml:8: out data\/ds\/x of stage "b" is claimed by out data\/ds\/x of stage "a"/,
      );
    });
    await t.step("cycle", () => {
      const text = `stages:
  a:
    script: pipeline/01_fetch.ts
    deps: [b_out]
    outs: [a_out]
  b:
    script: pipeline/02_teacher.ts
    deps: [a_out/file.txt]
    outs: [b_out]
`;
      const p = problems(() => bind(text));
      assert.equal(p.length, 1);
      assert.match(
        p[0],
        /^pipeline\/manifest\.yaml:\d: stages form a cycle: (a \(line 2\) → b \(line 6\) → a|b \(line 6\) → a \(line 2\) → b) \(line \d\)$/,
      );
    });
    await t.step("a stage reading its own out", () => {
      const p = problems(() =>
        bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n    deps: [o/x]\n    outs: [o]\n")
      );
      assert.match(p[0], /manifest\.yaml:4: stage "a" dep o\/x is its own out/);
      const out = problems(() =>
        bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n    outs: [/etc, x/../../y]\n")
      );
      assert.equal(out.length, 2);
      assert.match(out[0], /manifest\.yaml:4: stage "a" out "\/etc" points outside the repository/);
    });
    await t.step("unknown placeholder and YAML syntax ({ inside a flow list})", () => {
      const p = problems(() =>
        bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n    outs:\n      - data/{ds}/x\n")
      );
      assert.match(p[0], /manifest\.yaml:5: .*unknown placeholder \{ds\}/);
      const y = problems(() =>
        bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n\n    outs: [data/{ds}/x]\n")
      );
      assert.match(
        y[0],
        /manifest\.yaml:5: YAML syntax error: .*quote the path or use a `- item` block list/,
      );
      // {dataset} itself is fine unquoted in a flow list, as the manifest format shows it.
      const ok = bind(
        'stages:\n  a:\n    script: pipeline/01_fetch.ts\n    outs: [data/{dataset}/x, "q/{dataset}"]\n',
      );
      assert.deepEqual(ok.stages[0].outs.map((o) => o.path), ["data/ds/x", "q/ds"]);
    });
    await t.step("duplicate stage names and unknown top-level keys", () => {
      const dup = problems(() =>
        bind("stages:\n  a:\n    script: pipeline/01_fetch.ts\n  a:\n    script: pipeline/01_fetch.ts\n")
      );
      assert.match(dup[0], /^pipeline\/manifest\.yaml:4: YAML syntax error: Map keys must be unique/);
      const top = problems(() => bind("stage:\n  a: 1\nstages:\n  a:\n    script: pipeline/01_fetch.ts\n"));
      assert.match(top[0], /^pipeline\/manifest\.yaml:1: unknown top-level key "stage"/);
    });
    await t.step("params key the config lacks", () => {
      const pl = bind(FIXTURE_MANIFEST.replace("params: [seed, student.lr]", "params: [seed, student.lrr]"));
      const p = problems(() => checkParams(pl, FIXTURE_CONFIG));
      assert.match(
        p[0],
        /manifest\.yaml:18: stage "student" declares params key "student\.lrr" but the resolved config has no such key/,
      );
    });
    await t.step("unknown stage in a target", () => {
      const pl = bind(FIXTURE_MANIFEST);
      const p = problems(() => selectStages(pl, { targets: ["distill"] }));
      assert.match(
        p[0],
        /unknown stage "distill": pipeline\/manifest\.yaml defines fetch \(01\) at line 3, teacher \(02\) at line 8/,
      );
    });
  } finally {
    await f.cleanup();
  }
});

Deno.test("manifest: order, number prefixes, ancestors and selection", async () => {
  const f = await makeFixture();
  try {
    // Written out of order: the runner orders by deps ↔ outs.
    const text = FIXTURE_MANIFEST.replace(/ {2}fetch:\n( {4}.*\n){4}/, "") + `  fetch:
    script: pipeline/01_fetch.ts
    deps: [raw/input.txt]
    outs: ["data/{dataset}/fetched"]
`;
    const p = bindManifest(parseManifest(text, FILE), { root: f.root, dataset: "ds" });
    assert.deepEqual(p.stages.map((s) => s.name), ["fetch", "teacher", "student", "report"]);
    assert.equal(findStage(p, "03").name, "student");
    assert.equal(findStage(p, "2").name, "teacher");
    assert.deepEqual([...ancestors(p, "student")].sort(), ["fetch", "teacher"]);
    assert.deepEqual([...descendants(p, "teacher")].sort(), ["report", "student"]);
    assert.deepEqual(p.byName.get("student")!.deps.map((d) => d.producers), [["teacher"], ["fetch"]]);
    const names = (o: Parameters<typeof selectStages>[1]) => selectStages(p, o).selected.map((s) => s.name);
    assert.deepEqual(names({ targets: ["student"] }), ["fetch", "teacher", "student"]);
    assert.deepEqual(names({ targets: ["student"], only: true }), ["student"]);
    assert.deepEqual(names({ from: "teacher" }), ["teacher", "student", "report"]);
    assert.deepEqual(names({ until: "teacher" }), ["fetch", "teacher"]);
    assert.deepEqual(names({ from: "teacher", until: "student" }), ["teacher", "student"]);
    assert.deepEqual([...selectStages(p, { targets: ["student"], force: true }).forced], ["student"]);
    assert.deepEqual([...selectStages(p, { from: "student", force: true }).forced], ["student", "report"]);
    problems(() => selectStages(p, { from: "report", until: "fetch" }));
  } finally {
    await f.cleanup();
  }
});

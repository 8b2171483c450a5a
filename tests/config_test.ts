import assert from "assert";
import { ConfigError, deepMerge, getKey, resolveConfig, resolveText } from "../lib/config/mod.ts";

const base = `name: toy
source: /tmp/nowhere
num_classes: 3
seed: 1
data:
  keys: { image: image, label: class }
  splits: { train: { pattern: "train/*" }, validation: { pattern: "v/*" }, test: { pattern: "t/*" } }
teacher: { arch: d10-12, image_size: 32 }
student: { arch: d10-6s, image_size: 32 }
distill:
  modes: [function_matching]
  steps: 100
  batch_size: 8
  preprocess: "decode|value_range(-1,1)"
  temperature: 2
eval: { preprocess: "decode|value_range(-1,1)" }
profiles:
  smoke:
    distill: { steps: 3 }
  cpu: {}
  wide:
    extends: smoke
    distill: { batch_size: 16 }
`;

Deno.test("config: a profile overlays the base, extends chains, --set wins last", () => {
  const r = resolveText(base, "toy.yaml", {
    dataset: "toy",
    profile: "wide",
    set: ["distill.temperature=5"],
  });
  assert.equal(r.profile, "wide");
  assert.equal(r.config.distill.steps, 3);
  assert.equal(r.config.distill.batch_size, 16);
  assert.equal(r.config.distill.temperature, 5);
  assert.equal(r.config.distill.preprocess, "decode|value_range(-1,1)");
});

Deno.test("config: the default profile is cpu without a GPU and paper with one", () => {
  const withPaper = base + "  paper: {}\n";
  assert.equal(resolveText(withPaper, "toy.yaml", { dataset: "toy" }).profile, "cpu");
  assert.equal(resolveText(withPaper, "toy.yaml", { dataset: "toy", gpu: true }).profile, "paper");
});

Deno.test("config: an unknown key is an error naming the file, line and key", () => {
  const bad = base.replace("  temperature: 2\n", "  temperature: 2\n  temprature: 3\n");
  assert.throws(
    () => resolveText(bad, "toy.yaml", { dataset: "toy", profile: "cpu" }),
    (e: Error) =>
      e instanceof ConfigError && /toy\.yaml:16: distill\.temprature: unknown key/.test(e.message),
  );
});

Deno.test("config: a wrong type inside a profile names the profile's line", () => {
  const bad = base.replace("distill: { steps: 3 }", "distill: { steps: three }");
  assert.throws(
    () => resolveText(bad, "toy.yaml", { dataset: "toy", profile: "cpu" }),
    (e: Error) => /toy\.yaml:19: profiles\.smoke\.distill\.steps: expected an integer/.test(e.message),
  );
});

Deno.test("config: a published accuracy given in percent is refused with its line", () => {
  const bad = base + "published: { source: x, teacher_top1: 90.92, students: [] }\n";
  assert.throws(
    () => resolveText(bad, "toy.yaml", { dataset: "toy", profile: "cpu" }),
    (e: Error) =>
      /toy\.yaml:24: published\.teacher_top1: expected a number from 0 to 1, got 90\.92/.test(e.message),
  );
  const good = base +
    "published: { source: x, teacher_top1: 0.9092, students: [{ top1: 0.813, epochs: 300 }] }\n";
  assert.equal(
    resolveText(good, "toy.yaml", { dataset: "toy", profile: "cpu" }).config.published.teacher_top1,
    0.9092,
  );
});

Deno.test("config: an unknown profile and an unknown dataset are one clear sentence each", async () => {
  assert.throws(
    () => resolveText(base, "toy.yaml", { dataset: "toy", profile: "gpu" }),
    /profile "gpu" is not defined \(defined: smoke, cpu, wide\)/,
  );
  await assert.rejects(
    resolveConfig({ dataset: "no-such-dataset", profile: "smoke" }),
    /unknown dataset "no-such-dataset": .*pipeline\/datasets\/no-such-dataset\.yaml does not exist/,
  );
});

Deno.test("config: --source replaces the source; FUNMATCH_DATA_MIRROR applies only without it", () => {
  Deno.env.set("FUNMATCH_DATA_MIRROR", "/mirror");
  try {
    assert.equal(resolveText(base, "t.yaml", { dataset: "toy", profile: "cpu" }).config.source, "/mirror");
    assert.equal(
      resolveText(base, "t.yaml", { dataset: "toy", profile: "cpu", source: "/s" }).config.source,
      "/s",
    );
  } finally {
    Deno.env.delete("FUNMATCH_DATA_MIRROR");
  }
});

Deno.test("config: the shipped dataset configs resolve under every profile", async () => {
  for (const ds of ["pets37", "cifar10"]) {
    for (const profile of ["smoke", "cpu", "cpu-ablations", "paper"]) {
      const r = await resolveConfig({ dataset: ds, profile });
      assert.ok(r.config.distill.steps > 0, `${ds}/${profile}`);
    }
  }
  const abl = await resolveConfig({ dataset: "cifar10", profile: "cpu-ablations" });
  assert.deepEqual(abl.config.distill.modes, ["function_matching", "fixed_teacher", "labels"]);
});

Deno.test("config: deepMerge replaces lists and merges mappings; getKey reads dotted keys", () => {
  const m = deepMerge({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } });
  assert.deepEqual(m, { a: { b: 1, c: [3] } });
  assert.equal(getKey(m, "a.b"), 1);
  assert.equal(getKey(m, "a.x.y"), undefined);
});

Deno.test("config: backend, threads and native default to auto, 1 and auto when a config leaves them out", () => {
  const r = resolveText(base, "toy.yaml", { dataset: "toy", profile: "cpu" });
  assert.equal(r.config.backend, "auto");
  assert.equal(r.config.threads, 1);
  assert.equal(r.config.native, "auto");
  const set = resolveText(base + "native: off\n", "toy.yaml", { dataset: "toy", profile: "cpu" });
  assert.equal(set.config.native, "off");
});

Deno.test("config: warmup_steps and warmup_fraction are alternatives: the layer that sets one clears the other", () => {
  const withSteps = base.replace(
    "  temperature: 2\n",
    "  temperature: 2\n  schedule: { kind: warmup_cosine, warmup_steps: 1500 }\n",
  ).replace("distill: { steps: 3 }", "distill: { steps: 3, schedule: { warmup_fraction: 0.1 } }");
  const smoke =
    resolveText(withSteps, "toy.yaml", { dataset: "toy", profile: "smoke" }).config.distill.schedule;
  assert.deepEqual(smoke, { kind: "warmup_cosine", warmup_fraction: 0.1 });
  const cpu = resolveText(withSteps, "toy.yaml", { dataset: "toy", profile: "cpu" }).config.distill.schedule;
  assert.deepEqual(cpu, { kind: "warmup_cosine", warmup_steps: 1500 });
  const set = resolveText(withSteps, "toy.yaml", {
    dataset: "toy",
    profile: "smoke",
    set: ["distill.schedule.warmup_steps=10"],
  }).config.distill.schedule;
  assert.deepEqual(set, { kind: "warmup_cosine", warmup_steps: 10 });
  // a schedule of another kind replaces the block (no piecewise boundaries left in a cosine schedule)
  const kinds = deepMerge(
    { s: { kind: "piecewise", boundaries: [1, 2], values: [1, 0.1, 0.01] } },
    { s: { kind: "warmup_cosine", warmup_fraction: 0.1 } },
  );
  assert.deepEqual(kinds, { s: { kind: "warmup_cosine", warmup_fraction: 0.1 } });
  const both = base.replace(
    "  temperature: 2\n",
    "  temperature: 2\n  schedule: { warmup_steps: 5, warmup_fraction: 0.1 }\n",
  );
  assert.throws(
    () => resolveText(both, "toy.yaml", { dataset: "toy", profile: "cpu" }),
    /toy\.yaml: distill\.schedule sets both warmup_steps \(5\) and warmup_fraction \(0\.1\) in one place/,
  );
});

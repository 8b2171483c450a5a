import assert from "assert";
import { summarize } from "../lib/eval/metrics.ts";
import {
  ariaLabels,
  checkSvg,
  type M,
  mermaidFlowchart,
  parseCell,
  renderIndex,
  renderReport,
  type ReportInput,
  writeReport,
} from "../lib/report/mod.ts";

/** A metrics record with a 3-class confusion matrix consistent with `top1`. */
function metric(top1: number, agree: number, params: number, latency: number, kl = 0.1234): M {
  const confusion = [[8, 1, 1], [1, 8, 1], [2, 0, 0]];
  return {
    top1,
    top5: Math.min(1, top1 + 0.15),
    agreement_top1: agree,
    agreement_top5: Math.min(1, agree + 0.1),
    kl,
    per_class: [0.8, 0.8, NaN],
    confusion,
    params,
    bytes: params * 4 + 1234,
    latency_ms_b1: latency,
    throughput_b64: 64000 / (latency * 20),
    n: 30,
  };
}

function fixture(labelsTop1: number): ReportInput {
  const hist = (n: number, base: number) => ({
    points: Array.from({ length: n }, (_, i) => ({
      step: i * 10,
      loss: base / (i + 1),
      val_top1: 0.3 + 0.05 * i,
      val_agreement: 0.4 + 0.04 * i,
    })),
  });
  return {
    dataset: "pets37",
    profile: "cpu",
    config: {
      name: "pets37",
      teacher: { arch: "d10-12", image_size: 64 },
      student: { arch: "d10-6s", image_size: 64 },
      distill: { steps: 500, batch_size: 64, temperature: 2, modes: ["function_matching", "labels"] },
      data: { take: { train: 222, test: null } },
    },
    metrics: {
      teacher: { ...metric(0.8123, 1, 171334, 3.2, 0), compression: undefined },
      // deliberately not in report order: the report sorts modes
      students: {
        labels: metric(labelsTop1, 0.7, 39008, 1.1),
        function_matching: metric(0.7021, 0.8, 39008, 1.0),
      },
    },
    classes: ["Abyssinian", "beagle", "pug | <x>"],
    histories: { teacher: hist(5, 2), students: { function_matching: hist(6, 0.5), labels: hist(4, 1.5) } },
    cacheNothing: { top1_change_rate: 0.31, mean_kl: 0.42, pairs: 256 },
    stages: [
      { name: "fetch", script: "pipeline/01_fetch_tfrecords.ts", status: "fresh" },
      { name: "distill", script: "pipeline/04_distill.ts", status: "ran", duration_s: 754.2 },
    ],
    manifest: {
      stages: [
        { name: "fetch", deps: ["pipeline/01_fetch_tfrecords.ts"], outs: ["data/pets37/tfrecords"] },
        { name: "teacher", deps: ["data/pets37/tfrecords/train"], outs: ["data/pets37/teacher/"] },
        {
          name: "distill",
          deps: ["data/pets37/teacher", "data/pets37/tfrecords"],
          outs: ["data/pets37/students"],
        },
      ],
    },
    environment: { backend: "wasm", threads: 2, deno: "2.9.6", tfjs: "4.22.0", git_commit: "b920945" },
  };
}

/** Parses the "Headline numbers" table into rows of cells, keyed by the first cell. */
function headlineTable(md: string): { header: string[]; rows: Map<string, string[]> } {
  const sec = md.split("## Headline numbers")[1].split("\n## ")[0];
  const lines = sec.split("\n").filter((l) => l.startsWith("|"));
  const split = (l: string) => l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim());
  const header = split(lines[0]);
  const rows = new Map<string, string[]>();
  for (const l of lines.slice(2)) {
    const cells = split(l);
    assert.equal(cells.length, header.length, `row has ${cells.length} cells: ${l}`);
    rows.set(cells[0], cells);
  }
  return { header, rows };
}

Deno.test("headline table numbers match the metrics input", async () => {
  const input = fixture(0.6);
  const { markdown } = await renderReport(input);
  const { header, rows } = headlineTable(markdown);
  assert.deepEqual(header.slice(0, 6), ["Model", "Top-1", "Top-5", "Agree@1", "Agree@5", "KL"]);
  const col = (name: string) => header.indexOf(name);
  const keys = [...rows.keys()];
  assert.deepEqual(keys, [
    "teacher (`d10-12`)",
    "student `function_matching` (`d10-6s`)",
    "student `labels` (`d10-6s`)",
  ]);
  const t = input.metrics.teacher;
  const check = (row: string[], m: M, isTeacher: boolean) => {
    const near = (cellName: string, want: number, tol: number) => {
      const got = parseCell(row[col(cellName)]);
      assert.ok(got !== null && Math.abs(got - want) <= tol, `${row[0]} ${cellName}: ${got} vs ${want}`);
    };
    near("Top-1", m.top1, 5e-5);
    // three classes: every label is in the top 5, so the column says nothing and is left out
    assert.equal(row[col("Top-5")], "—");
    near("Params", m.params, 0);
    near("Size on disk", m.bytes, 0.005 * 1024);
    near("Latency b1", m.latency_ms_b1, 0.005);
    near("Throughput b64", m.throughput_b64, 0.05);
    if (isTeacher) {
      assert.equal(parseCell(row[col("Agree@1")]), null);
      near("Compression", 1, 0);
    } else {
      near("Agree@1", m.agreement_top1, 5e-5);
      assert.equal(row[col("Agree@5")], "—");
      near("KL", m.kl, 5e-5);
      near("Compression", t.params / m.params, 0.005);
      near("Speed-up b1", t.latency_ms_b1 / m.latency_ms_b1, 0.005);
      near("Throughput ×", m.throughput_b64 / t.throughput_b64, 0.005);
    }
  };
  check(rows.get(keys[0])!, t, true);
  check(rows.get(keys[1])!, input.metrics.students.function_matching, false);
  check(rows.get(keys[2])!, input.metrics.students.labels, false);
  // the verdict quotes the same numbers
  const verdict = markdown.split("\n\n")[1];
  assert.match(verdict, /\*\*70\.21 %\*\* top-1/);
  assert.match(verdict, /\*\*81\.23 %\*\* for the teacher \(−11\.02 pts\)/);
  assert.match(verdict, /\*\*4\.39×\*\* smaller/);
  assert.match(verdict, /\*\*3\.20×\*\* faster at batch 1/);
  const fm = input.metrics.students.function_matching;
  const gain = (fm.throughput_b64 / t.throughput_b64).toFixed(2);
  assert.match(
    verdict,
    new RegExp(`runs \\*\\*${gain.replace(".", "\\.")}×\\*\\* the teacher's throughput at batch 64`),
  );
});

Deno.test("headline numbers from summarize() survive a JSON round trip (NaN per-class → null)", async () => {
  const t = new Float32Array([0, 9, 0, 9, 0, 0, 0, 0, 9, 1, 0, 0]);
  const s = new Float32Array([0, 9, 1, 1, 5, 0, 9, 0, 1, 2, 0, 0]);
  const y = new Int32Array([1, 0, 0, 0]);
  const teacher = summarize({
    logits: t,
    labels: y,
    numClasses: 3,
    params: 900,
    bytes: 3600,
    latency_ms_b1: 2,
    throughput_b64: 500,
  });
  const fm = summarize({
    logits: s,
    labels: y,
    numClasses: 3,
    teacherLogits: t,
    params: 300,
    bytes: 1200,
    latency_ms_b1: 1,
    throughput_b64: 900,
    teacher: { params: 900, latency_ms_b1: 2 },
  });
  const metrics = JSON.parse(JSON.stringify({ teacher, students: { function_matching: fm } }));
  assert.equal(metrics.teacher.per_class[2], null);
  const { markdown } = await renderReport({
    dataset: "cifar10",
    profile: "smoke",
    config: {},
    metrics,
    histories: { students: {} },
  });
  const { rows } = headlineTable(markdown);
  const fmRow = rows.get("student `function_matching`")!;
  assert.equal(fmRow[1], "75.00 %");
  assert.equal(fmRow[3], "50.00 %");
  assert.equal(fmRow[10], "3.00×");
  assert.match(markdown, /\| 2 \| 0 \| — \| — \| — \|/); // class "2": no images, no accuracy
  assert.match(markdown, /no published FunMatch number for `cifar10`/);
  assert.match(markdown, /_No training history was recorded._/);
  assert.match(markdown, /_The cache-nothing measurement was not run._/);
});

Deno.test("figures are well-formed SVG, referenced by the markdown, and carry the data points", async () => {
  const input = fixture(0.6);
  const { markdown, files } = await renderReport(input);
  assert.deepEqual([...files.keys()], [
    "loss.svg",
    "val_top1.svg",
    "val_agreement.svg",
    "confusion.svg",
    "cache_nothing.svg",
  ]);
  const refs = [...markdown.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]);
  assert.deepEqual(refs, [...files.keys()].map((f) => `pets37/${f}`));
  for (const [name, svg] of files) checkSvg(svg, name);

  const top1 = ariaLabels(files.get("val_top1.svg")!);
  for (
    const [model, n] of [["teacher", 5], ["student function_matching", 6], ["student labels", 4]] as const
  ) {
    for (let i = 0; i < n; i++) {
      const want = `training step: ${i * 10}; top-1: ${Math.round((0.3 + 0.05 * i) * 100)}%; model: ${model}`;
      assert.ok(top1.includes(want), `val_top1.svg lacks "${want}"`);
    }
  }
  const agree = ariaLabels(files.get("val_agreement.svg")!);
  assert.ok(agree.includes("training step: 50; agreement: 60%; model: student function_matching"));
  assert.ok(!agree.some((l) => l.includes("model: teacher")), "the teacher has no agreement curve");
  const loss = ariaLabels(files.get("loss.svg")!);
  assert.ok(loss.some((l) => l.startsWith("training step: 40; loss: 0.4")), loss.join("\n"));

  const conf = ariaLabels(files.get("confusion.svg")!);
  assert.ok(conf.includes("predicted class: beagle; true class: beagle; share of true class: 80%"));
  assert.ok(conf.includes("predicted class: pug | <x>; true class: Abyssinian; share of true class: 10%"));
  assert.ok(
    !conf.some((l) => l.startsWith("predicted class: beagle; true class: pug")),
    "zero cells are blank",
  );
  const cn = ariaLabels(files.get("cache_nothing.svg")!);
  assert.ok(cn.includes("rate: 31%; what: teacher top-1 moves between two crops"));
  assert.ok(cn.includes("rate: 20%; what: student disagrees with teacher (test)"));
});

Deno.test("a second render is byte-identical, also after other charts were rendered", async () => {
  const a = await renderReport(fixture(0.6));
  await renderReport(fixture(0.75)); // advances vega's global id counters
  const b = await renderReport(fixture(0.6));
  assert.equal(a.markdown, b.markdown);
  assert.deepEqual([...a.files.keys()], [...b.files.keys()]);
  for (const [k, v] of a.files) assert.equal(v, b.files.get(k), `${k} differs between renders`);
  // object key order of the input does not matter
  const input = fixture(0.6);
  const reordered = { ...input, config: Object.fromEntries(Object.entries(input.config).reverse()) };
  assert.equal((await renderReport(reordered)).markdown, a.markdown);
});

Deno.test("the verdict says so plainly when labels beats function matching", async () => {
  const lose = (await renderReport(fixture(0.6))).markdown;
  const win = (await renderReport(fixture(0.75))).markdown;
  const verdict = (md: string) => md.split("\n\n")[1];
  assert.doesNotMatch(verdict(lose), /labels alone/);
  assert.match(verdict(win), /A student trained on labels alone scores higher than function matching here/);
  assert.match(verdict(win), /\(75\.00 % against 70\.21 %\)/);
  assert.match(verdict(win), /short schedules favour labels/);
  assert.match(verdict(win), /function matching keeps improving with long schedules/);
  assert.match(verdict(win), /about 144\.1 epochs/); // 500 steps × 64 / 222 images
  // the other way round, the verdict names what function matching beat, by how much
  assert.match(
    verdict(lose),
    /At the same budget function matching beats training on the labels by 10\.21 pts/,
  );
  assert.doesNotMatch(verdict(win), /function matching beats/);
});

Deno.test("published numbers, differences, sections in order, config and environment", async () => {
  const { markdown } = await renderReport(fixture(0.6));
  const order = [
    "# funmatch report: pets37",
    "## Headline numbers",
    "## Compared with the published numbers",
    "## Training curves",
    "## Confusion matrix",
    "## Per-class accuracy",
    "## Why no teacher prediction is cached",
    "## Stages of this run",
    "## Resolved configuration",
    "## Environment",
    "## Pipeline",
  ];
  const pos = order.map((h) => markdown.indexOf(h));
  assert.ok(pos.every((p, i) => p >= 0 && (i === 0 || p > pos[i - 1])), JSON.stringify(pos));
  assert.match(markdown, /\| 90\.92 % \| 81\.30 % \| 300 epochs, batch 512 \| 128 px \| 3,312 \|/);
  assert.match(markdown, /\| 90\.92 % \| 86\.00 % \| 1,000 epochs/);
  assert.match(markdown, /- Resolution: 64 px against 128 px\./);
  assert.match(markdown, /- Data: 222 training images against 3,312\./);
  assert.match(markdown, /\| beagle \| 10 \| 80\.00 % \| 80\.00 % \| 80\.00 % \| \+0\.00 pts \|/);
  assert.match(markdown, /\| pug \\\| &lt;x&gt; \| 2 \| — \| — \| — \| — \|/);
  assert.match(
    markdown,
    /\| fetch \| `pipeline\/01_fetch_tfrecords.ts` \| fresh \(up to date, not rerun\) \| — \|/,
  );
  assert.match(markdown, /\| distill \| `pipeline\/04_distill.ts` \| ran \| 12 min 34 s \|/);
  assert.match(markdown, /<details><summary>[^<]*<\/summary>\n\n```yaml\ndata:\n {2}take:\n/);
  assert.match(
    markdown,
    /- Backend: `wasm`, 2 threads\n- Deno 2\.9\.6, TensorFlow\.js 4\.22\.0\n- Git commit: `b920945`/,
  );
  assert.match(markdown, /No teacher prediction is cached: over 256 pairs .* changed 31\.00 % of the time/);
  assert.match(markdown, /```mermaid\nflowchart LR\n/);

  // Flowers: one published student, unknown resolution
  const fl = await renderReport({ ...fixture(0.6), dataset: "flowers102" });
  assert.match(fl.markdown, /\| 98\.18 % \| 81\.02 % \| 1,000 epochs \| not published \| not published \|/);
  const food = await renderReport({ ...fixture(0.6), dataset: "food101" });
  assert.match(food.markdown, /\| 85\.52 % \| 76\.06 % \| 100 epochs/);
});

Deno.test("mermaid flowchart links producers to consumers through their outs", () => {
  const m = mermaidFlowchart([
    { name: "fetch", deps: ["lib/data/"], outs: ["data/x/tfrecords"] },
    { name: 'teacher "T"', deps: ["data/x/tfrecords/train"], outs: ["data/x/teacher/"] },
    { name: "report", deps: ["data/x/teacher/card.json"], outs: ["reports/x.md"] },
  ]);
  assert.equal(
    m,
    [
      "flowchart LR",
      '  s0["fetch"]',
      '  s1["teacher #quot;T#quot;"]',
      '  s2["report"]',
      '  d0[("data/x/tfrecords")]',
      '  d1[("data/x/teacher/")]',
      '  d2[("reports/x.md")]',
      "  s0 --> d0",
      "  s1 --> d1",
      "  s2 --> d2",
      "  d0 --> s1",
      "  d1 --> s2",
    ].join("\n"),
  );
});

Deno.test("renderIndex sorts datasets and formats fixed-precision numbers", () => {
  const md = renderIndex([
    {
      dataset: "pets37",
      profile: "cpu",
      teacher_top1: 0.9,
      student_top1: 0.5,
      agreement: 0.55,
      compression: 4.3851,
    },
    {
      dataset: "cifar10",
      profile: "smoke",
      teacher_top1: 0.8011,
      student_top1: 0.7188,
      agreement: 0.7939,
      compression: 4.39,
    },
  ]);
  const rows = md.split("\n").filter((l) => l.startsWith("| ["));
  assert.deepEqual(rows, [
    "| [cifar10](cifar10.md) | `smoke` | 80.11 % | 71.88 % | 79.39 % | 4.39× |",
    "| [pets37](pets37.md) | `cpu` | 90.00 % | 50.00 % | 55.00 % | 4.39× |",
  ]);
  assert.match(renderIndex([]), /_No reports yet._/);
});

Deno.test("writeReport replaces the figure folder and writes the markdown", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/pets37`);
    await Deno.writeTextFile(`${dir}/pets37/stale.svg`, "<svg/>");
    const out = {
      markdown: "# r\n",
      files: new Map([["a.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>']]),
    };
    await writeReport(dir, "pets37", out);
    assert.equal(await Deno.readTextFile(`${dir}/pets37.md`), "# r\n");
    const names = [];
    for await (const e of Deno.readDir(`${dir}/pets37`)) names.push(e.name);
    assert.deepEqual(names, ["a.svg"]);
    const top = [];
    for await (const e of Deno.readDir(dir)) top.push(e.name);
    assert.deepEqual(top.sort(), ["pets37", "pets37.md"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad dataset names are rejected with a clear sentence", async () => {
  await assert.rejects(() => renderReport({ ...fixture(0.6), dataset: "../x" }), /dataset name "\.\.\/x"/);
});

Deno.test("published numbers: input, config block over the built-in, explicit none", async () => {
  const { resolvePublished } = await import("../lib/report/render.ts");
  assert.equal(resolvePublished("pets37", {})?.teacher_top1, 0.9092);
  assert.equal(resolvePublished("pets37", { published: null }), null);
  assert.equal(resolvePublished("cifar10", {}), null);
  const over = resolvePublished("pets37", {
    published: {
      teacher_top1: 0.9103,
      students: [{ top1: 0.8275, epochs: 300, arch: "R50x1" }],
      note: "paper",
    },
  });
  assert.equal(over?.teacher_top1, 0.9103);
  assert.deepEqual(over?.students, [{ top1: 0.8275, epochs: 300, arch: "R50x1" }]);
  assert.equal(over?.resolution, 128); // kept from the built-in entry
  const own = resolvePublished("mine", {
    published: { teacher_top1: 0.5, students: [{ top1: 0.4, epochs: 10 }] },
  });
  assert.equal(own?.source, "config `published`");
  const md =
    (await renderReport({ ...fixture(0.6), config: { ...fixture(0.6).config, published: null } })).markdown;
  assert.match(md, /config turns the comparison off/);
});

Deno.test("verdict: top-5 shown with many classes, a teacher at chance is said so, a tiny test split is flagged", async () => {
  const input = fixture(0.6);
  const ten = (m: M, top1: number): M => ({
    ...m,
    top1,
    per_class: Array.from({ length: 10 }, () => top1),
    confusion: Array.from({ length: 10 }, () => Array(10).fill(3)),
    n: 20,
  });
  input.metrics.teacher = ten(input.metrics.teacher, 0.1);
  input.metrics.students.function_matching = ten(input.metrics.students.function_matching, 0.15);
  input.metrics.students.labels = ten(input.metrics.students.labels, 0.1);
  const { markdown } = await renderReport(input);
  const { header, rows } = headlineTable(markdown);
  const t = rows.get("teacher (`d10-12`)")!;
  assert.equal(parseCell(t[header.indexOf("Top-5")]), input.metrics.teacher.top5);
  const verdict = markdown.split("\n\n")[1];
  assert.match(verdict, /The teacher is at chance level \(1\/10 = 10\.00 %\)/);
  assert.match(
    verdict,
    /With only 20 evaluation images these accuracies say little: one image is 5\.0 points\./,
  );
});

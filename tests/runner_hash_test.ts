// Hashing with the stat cache, the code graph from `deno info`, and params values.
import assert from "assert";
import { createHash } from "node:crypto";
import { RACY_MS, sha256File, StatCache } from "../lib/runner/hash.ts";
import { stageCode } from "../lib/runner/codegraph.ts";
import { diffValues, paramValue, selectParam, stableStringify } from "../lib/runner/params.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** Sets a file's mtime into the past so the stat cache may keep it (it skips files younger than RACY_MS). */
async function age(path: string, secondsAgo = 60) {
  const t = new Date(Date.now() - secondsAgo * 1000);
  await Deno.utime(path, t, t);
}

Deno.test("hash: files, folders and the stat cache", async () => {
  const dir = await Deno.makeTempDir({ prefix: "funmatch-hash-" });
  try {
    await Deno.mkdir(`${dir}/d/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/d/a.bin`, "aaaa");
    await Deno.writeTextFile(`${dir}/d/sub/b.bin`, "bb");
    await Deno.writeTextFile(`${dir}/d/sub/b.bin.tmp-123`, "half-written");
    for (const f of ["d/a.bin", "d/sub/b.bin"]) await age(`${dir}/${f}`);
    assert.equal(await sha256File(`${dir}/d/a.bin`), sha("aaaa"));

    const cacheFile = `${dir}/.statcache.json`;
    const c1 = await StatCache.load(cacheFile);
    const h1 = await c1.hashPath(dir, "d");
    assert.ok(h1);
    assert.deepEqual(h1.files, { "a.bin": sha("aaaa"), "sub/b.bin": sha("bb") }); // tmp names skipped
    assert.equal(c1.stats.hashed, 2);
    await c1.save();
    assert.equal(await c1.hashPath(dir, "missing"), null);

    // Warm: no file is read.
    const c2 = await StatCache.load(cacheFile);
    const h2 = await c2.hashPath(dir, "d");
    assert.deepEqual(h2, h1);
    assert.deepEqual(c2.stats, { hits: 2, hashed: 0, bytes: 0 });

    // Same size, mtime put back: inode/ctime still differ (write via rename), so it is rehashed.
    const st = await Deno.stat(`${dir}/d/a.bin`);
    await Deno.writeTextFile(`${dir}/d/a.tmp`, "AAAA");
    await Deno.rename(`${dir}/d/a.tmp`, `${dir}/d/a.bin`);
    await Deno.utime(`${dir}/d/a.bin`, st.atime!, st.mtime!);
    const c3 = await StatCache.load(cacheFile);
    const h3 = await c3.hashPath(dir, "d");
    assert.equal(h3!.files!["a.bin"], sha("AAAA"));
    assert.notEqual(h3!.hash, h1.hash);
    assert.equal(c3.stats.hashed, 1);

    // A file modified just now is hashed but not cached (racy), so an edit in the same tick is never missed.
    await Deno.writeTextFile(`${dir}/fresh.txt`, "x");
    const c4 = await StatCache.load(null);
    await c4.hashPath(dir, "fresh.txt");
    await c4.hashPath(dir, "fresh.txt");
    assert.equal(c4.stats.hashed, 2, `files younger than ${RACY_MS} ms must be rehashed every time`);

    // Renaming a file changes the folder hash even though no content changed.
    await Deno.rename(`${dir}/d/sub/b.bin`, `${dir}/d/sub/c.bin`);
    const h5 = await (await StatCache.load(cacheFile)).hashPath(dir, "d");
    assert.notEqual(h5!.hash, h3!.hash);

    // A corrupt cache is just an empty cache.
    await Deno.writeTextFile(cacheFile, "{not json");
    const c6 = await StatCache.load(cacheFile);
    assert.equal((await c6.hashPath(dir, "d/a.bin"))!.hash, sha("AAAA"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("codegraph: local imports, URL-loaded workers and npm packages, from deno info", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "funmatch-graph-" }));
  try {
    const files: Record<string, string> = {
      "pipeline/01_a.ts": `import { x } from "../lib/x.ts";\nconsole.log(x);\n`,
      "pipeline/02_b.ts":
        `import "../lib/y.ts";\nconst w = new Worker(new URL("../lib/worker.ts", import.meta.url), { type: "module" });\nw.terminate();\n`,
      "lib/x.ts": `export { z as x } from "./z.ts";\n`,
      "lib/z.ts": `export const z = 1;\n`,
      "lib/y.ts": `export const y = await import("./dyn.ts");\n`,
      "lib/dyn.ts": `export const d = 1;\n`,
      "lib/worker.ts":
        `import { z } from "./z.ts";\nconst wasm = new URL("./k.wasm", import.meta.url);\nconsole.log(z, wasm);\n`,
      "lib/k.wasm": "\0asm",
      "lib/unused.ts": `export const u = 1;\n`,
      "pipeline/03_bad.ts": `import "../lib/nope.ts";\n`,
    };
    for (const [rel, text] of Object.entries(files)) {
      await Deno.mkdir(`${root}/${rel.slice(0, rel.lastIndexOf("/"))}`, { recursive: true });
      await Deno.writeTextFile(`${root}/${rel}`, text);
    }
    const code = await stageCode(root, ["pipeline/01_a.ts", "pipeline/02_b.ts"]);
    assert.deepEqual(code.get("pipeline/01_a.ts"), {
      files: ["lib/x.ts", "lib/z.ts", "pipeline/01_a.ts"],
      npm: [],
    });
    assert.deepEqual(code.get("pipeline/02_b.ts")!.files, [
      "lib/dyn.ts",
      "lib/k.wasm",
      "lib/worker.ts",
      "lib/y.ts",
      "lib/z.ts",
      "pipeline/02_b.ts",
    ]);
    await assert.rejects(
      () => stageCode(root, ["pipeline/03_bad.ts"]),
      /pipeline\/03_bad\.ts imports lib\/nope\.ts, which cannot be loaded/,
    );
    // npm packages (through the repo's import map) count as code by name@version; node: builtins do not.
    const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
    const cli = (await stageCode(repo, ["lib/runner/cli.ts"])).get("lib/runner/cli.ts")!;
    assert.ok(cli.npm.some((n) => /^npm:yaml@\d/.test(n)), cli.npm.join(", "));
    assert.ok(cli.npm.every((n) => n.startsWith("npm:")));
    assert.ok(cli.files.includes("lib/runner/manifest.ts") && cli.files.includes("lib/runner/cli.ts"));
    assert.ok(!cli.files.includes("lib/runner/_testing.ts"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("params: selection, stable JSON and leaf diffs", () => {
  const cfg = {
    seed: 0,
    teacher: { lr: 0.01, arch: { name: "R50x1", groups: 32 } },
    data: { splits: ["train"] },
  };
  assert.deepEqual(selectParam(cfg, "teacher.arch.name"), { found: true, value: "R50x1" });
  assert.deepEqual(selectParam(cfg, "teacher.*"), { found: true, value: cfg.teacher });
  assert.equal(selectParam(cfg, "teacher.momentum").found, false);
  assert.equal(selectParam(cfg, "seed.x").found, false);
  assert.equal(
    stableStringify({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }),
    '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}',
  );
  assert.equal(paramValue({ t: { a: 1, b: 2 } }, "t.*").hash, paramValue({ t: { b: 2, a: 1 } }, "t.*").hash);
  assert.notEqual(paramValue({ t: 1 }, "t").hash, paramValue({ t: "1" }, "t").hash);
  assert.deepEqual(
    diffValues("teacher", cfg.teacher, { ...cfg.teacher, lr: 0.003, arch: { name: "R50x1", groups: 16 } }),
    ["teacher.arch.groups: 32 → 16", "teacher.lr: 0.01 → 0.003"],
  );
  assert.deepEqual(diffValues("data.splits", ["train"], ["train", "validation"]), [
    'data.splits: ["train"] → ["train","validation"]',
  ]);
});

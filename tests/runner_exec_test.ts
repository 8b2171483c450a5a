// Stage subprocesses: output passed through as is, and logged as readable lines.
import assert from "assert";
import { LogLines, spawnStage } from "../lib/runner/exec.ts";

Deno.test("exec: LogLines keeps whole lines, the final state of a redrawn bar, no colour codes", () => {
  const l = new LogLines();
  const enc = (s: string) => new TextEncoder().encode(s);
  let log = "";
  log += l.push(enc("step 1/3\rstep 2/3\r"));
  assert.equal(log, ""); // nothing complete yet
  log += l.push(enc("\x1b[2Kstep 3/3 \x1b[32mok\x1b[0m\nplain li"));
  log += l.push(enc("ne\r"));
  log += l.push(enc("\nlast é".slice(0, 6)));
  log += l.push(new Uint8Array([0xc3])); // first byte of é, split across chunks
  log += l.push(new Uint8Array([0xa9]));
  log += l.end();
  assert.equal(log, "step 3/3 ok\nplain line\nlast é\n");
});

Deno.test("exec: spawnStage passes output through, tees it to the log, reports the exit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "funmatch-exec-" });
  try {
    await Deno.writeTextFile(
      `${dir}/s.ts`,
      `console.log("out " + Deno.env.get("X"));\nawait Deno.stderr.write(new TextEncoder().encode("bar 1\\rbar 2\\n"));\nDeno.exit(4);\n`,
    );
    const out: string[] = [];
    const err: string[] = [];
    const dec = new TextDecoder();
    const p = await spawnStage({
      args: ["run", "-A", "s.ts"],
      cwd: dir,
      env: { X: "42" },
      logPath: `${dir}/s.log`,
      header: "=== s ===\n",
      stdout: (c) => void out.push(dec.decode(c)),
      stderr: (c) => void err.push(dec.decode(c)),
    });
    const st = await p.status;
    assert.equal(st.code, 4);
    assert.equal(out.join(""), "out 42\n");
    assert.equal(err.join(""), "bar 1\rbar 2\n");
    const log = await Deno.readTextFile(`${dir}/s.log`);
    assert.ok(log.startsWith("=== s ===\n"));
    assert.deepEqual(log.split("\n").slice(1).sort(), ["", "bar 2", "out 42"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

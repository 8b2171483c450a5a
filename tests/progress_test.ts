import assert from "assert";
import { formatAmount, formatDuration, Progress } from "../lib/progress.ts";

Deno.test("progress writes plain lines and log lines to the log file", async () => {
  const dir = await Deno.makeTempDir();
  const logFile = `${dir}/logs/stage.log`;
  const p = new Progress({ label: "dl", total: 2048, unit: "B", logFile, interval: 0, tty: false });
  p.tick(1024, { shard: "a" });
  p.log("hello world");
  p.tick(1024);
  p.done({ ok: 1 });
  const text = await Deno.readTextFile(logFile);
  assert.match(text, /dl: 1\.0 KiB\/2\.0 KiB \(50\.0%\)/);
  assert.match(text, /shard=a/);
  assert.match(text, /hello world/);
  assert.match(text, /dl: 2\.0 KiB\/2\.0 KiB \(100\.0%\).* ok=1 done/);
  assert.equal(p.count, 2048);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("formatting helpers", () => {
  assert.equal(formatAmount(1536, "B"), "1.5 KiB");
  assert.equal(formatAmount(12, "img"), "12 img");
  assert.equal(formatDuration(3725), "1h02m");
  assert.equal(formatDuration(65), "1m05s");
  assert.equal(formatDuration(Infinity), "?");
});

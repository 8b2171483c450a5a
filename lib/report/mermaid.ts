/**
 * The pipeline as a Mermaid flowchart (GitHub renders ```mermaid blocks natively).
 *
 * Why this module exists: the report shows which stage produced which artefact from the same manifest
 * the runner executes, so the diagram cannot drift from the pipeline.
 *
 * @module
 */

/** A stage as declared in `pipeline/manifest.yaml`. */
export interface ManifestStage {
  name: string;
  deps: string[];
  outs: string[];
}

function label(s: string): string {
  return '"' + s.replace(/"/g, "#quot;").replace(/[<>]/g, (c) => (c === "<" ? "#lt;" : "#gt;")) + '"';
}

function norm(p: string): string {
  return p.replace(/\/+$/, "");
}

/** Whether a dep path is (inside) an out path, or an out lies inside the dep folder. */
function feeds(out: string, dep: string): boolean {
  const o = norm(out);
  const d = norm(dep);
  return o === d || d.startsWith(o + "/") || o.startsWith(d + "/");
}

/**
 * A `flowchart LR` with one box per stage and one cylinder per out, edges stage → out → consuming stage.
 * Deps that no stage produces (code, config, external sources) are left out to keep the diagram readable.
 *
 * @example
 * ```ts
 * mermaidFlowchart([{ name: "fetch", deps: [], outs: ["data/x/tfrecords"] },
 *                   { name: "teacher", deps: ["data/x/tfrecords/train"], outs: ["data/x/teacher"] }]);
 * ```
 */
export function mermaidFlowchart(stages: ManifestStage[]): string {
  const lines = ["flowchart LR"];
  const outs: string[] = [];
  stages.forEach((s, i) => {
    lines.push(`  s${i}[${label(s.name)}]`);
    for (const o of s.outs) if (!outs.includes(o)) outs.push(o);
  });
  outs.forEach((o, j) => lines.push(`  d${j}[(${label(o)})]`));
  const edges = new Set<string>();
  stages.forEach((s, i) => {
    for (const o of s.outs) edges.add(`  s${i} --> d${outs.indexOf(o)}`);
  });
  stages.forEach((s, i) => {
    outs.forEach((o, j) => {
      const producer = stages.findIndex((p) => p.outs.includes(o));
      if (producer !== i && s.deps.some((d) => feeds(o, d))) edges.add(`  d${j} --> s${i}`);
    });
  });
  lines.push(...edges);
  return lines.join("\n");
}

/** A linear chain of stage names, for when no manifest is available. */
export function mermaidChain(names: string[]): string {
  const lines = ["flowchart LR"];
  names.forEach((n, i) => lines.push(`  s${i}[${label(n)}]`));
  for (let i = 1; i < names.length; i++) lines.push(`  s${i - 1} --> s${i}`);
  return lines.join("\n");
}

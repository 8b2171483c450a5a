/**
 * The report: per-dataset markdown with Vega-Lite figures, the index of all reports, and the helpers
 * tests use to check them. See `render.ts` for the content and `svg.ts` for reproducible SVG.
 *
 * @module
 */
export * from "./render.ts";
export { writeReport } from "./write.ts";
export { ariaLabels, checkSvg, checkXml, renderVegaLite } from "./svg.ts";
export { parseCell } from "./format.ts";
export { publishedFor } from "./published.ts";
export { mermaidChain, mermaidFlowchart } from "./mermaid.ts";

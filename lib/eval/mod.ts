/**
 * Evaluation: metrics over logits and latency measurement, shared by the evaluate stage and the report.
 *
 * @module
 */
export * from "./metrics.ts";
export * from "./latency.ts";

/**
 * Vega-Lite specifications of the report's figures: training curves, confusion heatmap, cache-nothing.
 *
 * Why this module exists: the figures are data, not drawing code. Each builder is a pure function from
 * report data to a Vega-Lite spec (so a test can inspect the spec without rendering), and
 * `svg.ts#renderVegaLite` turns a spec into reproducible SVG bytes.
 *
 * @module
 */

/** A named series of (step, value) points. */
export interface Series {
  model: string;
  /** Line colour; defaults to the palette by position. Give it to keep a model's colour across charts. */
  color?: string;
  points: { step: number; value: number }[];
}

/** At most this many points per series are drawn (evenly spaced, always keeping the first and last). */
export const MAX_POINTS = 200;
/** Series with at most this many points get a marker (and an aria-label) per point. */
export const MARKER_POINTS = 60;

/** Evenly thins a list to at most `max` items, keeping the first and the last; deterministic. */
export function thin<T>(xs: T[], max = MAX_POINTS): T[] {
  if (xs.length <= max) return xs;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(xs[Math.round((i * (xs.length - 1)) / (max - 1))]);
  return out;
}

/** Colours given to models in order (teacher first, then the students in report order). */
export const PALETTE = [
  "#4c78a8",
  "#f58518",
  "#54a24b",
  "#e45756",
  "#72b7b2",
  "#b279a2",
  "#ff9da6",
  "#9d755d",
];

/**
 * Line chart of one quantity vs training step, one colour per model. With `facet`, one panel per
 * model with its own y scale (for losses, which are different objectives per model).
 */
export function curveSpec(
  series: Series[],
  opts: { title: string; yTitle: string; percent?: boolean; facet?: boolean },
): Record<string, unknown> {
  const models = series.map((s) => s.model);
  const values: { step: number; value: number; model: string }[] = [];
  let longest = 0;
  for (const s of series) {
    const pts = thin([...s.points].sort((a, b) => a.step - b.step));
    longest = Math.max(longest, pts.length);
    for (const p of pts) values.push({ step: p.step, value: p.value, model: s.model });
  }
  const color = {
    field: "model",
    type: "nominal",
    title: "model",
    scale: { domain: models, range: series.map((s, i) => s.color ?? PALETTE[i % PALETTE.length]) },
    sort: models,
    // Without a canvas, vega over-estimates text widths; a high limit avoids truncated names.
    legend: opts.facet ? null : { labelLimit: 1000 },
  };
  const y: Record<string, unknown> = { field: "value", type: "quantitative", title: opts.yTitle };
  if (opts.percent) y.axis = { format: ".0%" };
  const unit = {
    mark: { type: "line", point: longest <= MARKER_POINTS, clip: false },
    encoding: {
      x: { field: "step", type: "quantitative", title: "training step" },
      y,
      color,
    },
  };
  if (opts.facet) {
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: opts.title,
      data: { values },
      facet: { row: { field: "model", type: "nominal", title: null, sort: models } },
      spec: { width: 520, height: 140, ...unit },
      resolve: { scale: { y: "independent" } },
    };
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: 520,
    height: 260,
    data: { values },
    ...unit,
  };
}

/** Unique axis labels for class names (prefixed with the index when names repeat or are missing). */
export function classLabels(numClasses: number, classes?: string[]): string[] {
  const names = Array.from({ length: numClasses }, (_, i) => classes?.[i] ?? String(i));
  const unique = new Set(names).size === names.length;
  return names.map((n, i) => (unique ? n : `${i}: ${n}`));
}

/**
 * Heatmap of `confusion[true][predicted]`, coloured by the fraction of the true class's examples.
 * Zero cells are left blank; counts are printed in the cells for up to 12 classes.
 */
export function confusionSpec(
  confusion: number[][],
  opts: { title: string; classes?: string[] },
): Record<string, unknown> {
  const C = confusion.length;
  const labels = classLabels(C, opts.classes);
  const values: { true: string; predicted: string; count: number; fraction: number }[] = [];
  confusion.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, p) => {
      if (count > 0) {
        values.push({
          true: labels[t],
          predicted: labels[p],
          count,
          fraction: total > 0 ? count / total : 0,
        });
      }
    });
  });
  const step = C <= 12 ? 36 : C <= 20 ? 22 : C <= 40 ? 14 : Math.max(3, Math.floor(600 / C));
  const showLabels = C <= 40;
  const axis = (title: string) => ({
    field: title === "true class" ? "true" : "predicted",
    type: "ordinal",
    title,
    sort: labels,
    scale: { domain: labels },
    axis: showLabels ? { labelLimit: 300 } : { labels: false, ticks: false },
  });
  const layers: Record<string, unknown>[] = [{
    // Per-cell aria-labels are useful (and tested) but cost ~150 bytes a cell; drop them for big C.
    mark: { type: "rect", aria: showLabels },
    encoding: {
      color: {
        field: "fraction",
        type: "quantitative",
        title: "share of true class",
        scale: { domain: [0, 1], scheme: "blues" },
        legend: { format: ".0%" },
      },
    },
  }];
  if (C <= 12) {
    layers.push({
      mark: { type: "text", fontSize: 10 },
      encoding: {
        text: { field: "count", type: "quantitative" },
        color: { condition: { test: "datum.fraction > 0.5", value: "white" }, value: "black" },
      },
    });
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: { step },
    height: { step },
    data: { values },
    encoding: { x: axis("predicted class"), y: axis("true class") },
    layer: layers,
  };
}

/** Horizontal bars of rates (fractions) with their value printed at the end of each bar. */
export function ratesSpec(
  bars: { label: string; value: number }[],
  opts: { title: string },
): Record<string, unknown> {
  const labels = bars.map((b) => b.label);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: 360,
    height: { step: 34 },
    data: { values: bars.map((b) => ({ what: b.label, rate: b.value })) },
    encoding: {
      y: { field: "what", type: "nominal", title: null, sort: labels, axis: { labelLimit: 1000 } },
      x: {
        field: "rate",
        type: "quantitative",
        title: null,
        scale: { domain: [0, 1] },
        axis: { format: ".0%" },
      },
    },
    layer: [
      { mark: { type: "bar", color: "#4c78a8" } },
      {
        mark: { type: "text", align: "left", dx: 4 },
        encoding: { text: { field: "rate", type: "quantitative", format: ".1%" } },
      },
    ],
  };
}

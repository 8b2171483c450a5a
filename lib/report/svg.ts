/**
 * Vega-Lite → SVG rendering, headless and byte-reproducible, plus a strict XML well-formedness check.
 *
 * Why this module exists: the report's figures are committed next to the markdown, so rendering the same
 * data twice must give the same bytes (vega numbers clip paths and gradients with process-wide counters;
 * we reset them and renumber ids by first appearance). And GitHub silently shows a broken image for an
 * SVG that is not well-formed XML, so tests check every figure with {@link checkXml}, a small strict
 * parser written for that purpose (no DTDs, no external entities).
 *
 * @module
 */
import * as vega from "vega";
import * as vl from "vega-lite";

/** Renders a Vega-Lite spec to an SVG string with the headless (renderer "none") vega View. */
export async function renderVegaLite(spec: Record<string, unknown>): Promise<string> {
  const compiled = vl.compile(spec as any).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    (vega as any).resetSVGDefIds?.();
    const svg = await view.toSVG();
    return normalizeSvgIds(svg);
  } finally {
    view.finalize();
  }
}

/**
 * Renumbers vega's generated `clipN` / `gradient_N` ids in order of first appearance, so the output does
 * not depend on how many charts the process rendered before.
 */
export function normalizeSvgIds(svg: string): string {
  const map = new Map<string, string>();
  const rename = (kind: string, id: string): string => {
    const key = `${kind}:${id}`;
    let v = map.get(key);
    if (!v) {
      const n = [...map.keys()].filter((k) => k.startsWith(kind + ":")).length;
      v = kind === "clip" ? `clip${n + 1}` : `gradient_${n}`;
      map.set(key, v);
    }
    return v;
  };
  return svg.replace(
    /(id="|url\(#)(clip\d+|gradient_\d+)/g,
    (_m, pre: string, id: string) => pre + rename(id.startsWith("clip") ? "clip" : "gradient", id),
  );
}

const NAME = /^[A-Za-z_:][A-Za-z0-9_.:-]*/;
const ENTITY = /^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/;

function fail(what: string, offset: number, msg: string): never {
  throw new Error(`${what}: not well-formed XML at byte offset ${offset}: ${msg}.`);
}

function checkText(text: string, base: number, what: string): void {
  for (let i = text.indexOf("&"); i >= 0; i = text.indexOf("&", i + 1)) {
    if (!ENTITY.test(text.slice(i, i + 12))) fail(what, base + i, "bare '&' or unknown entity");
  }
}

/**
 * Throws (naming `what` and the offset) unless `xml` is a single well-formed XML element: balanced and
 * properly nested tags, quoted and unique attributes, no stray `<` or bare `&`, only predefined or numeric
 * entities, comments / processing instructions / CDATA closed. Returns the root element's name.
 *
 * @example
 * ```ts
 * checkXml('<svg xmlns="http://www.w3.org/2000/svg"><g/></svg>'); // "svg"
 * ```
 */
export function checkXml(xml: string, what = "xml"): string {
  const stack: string[] = [];
  let root = "";
  let rootClosed = false;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text.includes(">")) fail(what, i + text.indexOf(">"), "stray '>' in text");
    checkText(text, i, what);
    if (text.trim() !== "" && stack.length === 0) fail(what, i, "text outside the root element");
    if (lt < 0) break;
    i = lt;
    if (xml.startsWith("<!--", i)) {
      const e = xml.indexOf("-->", i + 4);
      if (e < 0) fail(what, i, "unterminated comment");
      i = e + 3;
      continue;
    }
    if (xml.startsWith("<![CDATA[", i)) {
      if (stack.length === 0) fail(what, i, "CDATA outside the root element");
      const e = xml.indexOf("]]>", i);
      if (e < 0) fail(what, i, "unterminated CDATA section");
      i = e + 3;
      continue;
    }
    if (xml.startsWith("<?", i)) {
      const e = xml.indexOf("?>", i);
      if (e < 0) fail(what, i, "unterminated processing instruction");
      i = e + 2;
      continue;
    }
    if (xml.startsWith("<!", i)) fail(what, i, "DOCTYPE and other declarations are not allowed");
    if (xml.startsWith("</", i)) {
      const m = NAME.exec(xml.slice(i + 2, i + 2 + 256));
      if (!m) fail(what, i, "bad end-tag name");
      let j = i + 2 + m[0].length;
      while (/\s/.test(xml[j] ?? "")) j++;
      if (xml[j] !== ">") fail(what, j, `expected '>' to close </${m[0]}`);
      const open = stack.pop();
      if (open !== m[0]) fail(what, i, `end tag </${m[0]}> does not match <${open ?? "(none)"}>`);
      if (stack.length === 0) rootClosed = true;
      i = j + 1;
      continue;
    }
    // start tag
    const m = NAME.exec(xml.slice(i + 1, i + 1 + 256));
    if (!m) fail(what, i, "stray '<' (bad start-tag name)");
    if (rootClosed) fail(what, i, "second root element");
    const name = m[0];
    if (stack.length === 0) root = name;
    let j = i + 1 + name.length;
    const seen = new Set<string>();
    for (;;) {
      const ws = j;
      while (/\s/.test(xml[j] ?? "")) j++;
      if (xml[j] === ">") {
        stack.push(name);
        j++;
        break;
      }
      if (xml.startsWith("/>", j)) {
        if (stack.length === 0) rootClosed = true;
        j += 2;
        break;
      }
      if (j === ws) fail(what, j, `expected whitespace, '>' or '/>' in <${name}>`);
      const a = NAME.exec(xml.slice(j, j + 256));
      if (!a) fail(what, j, `bad attribute name in <${name}>`);
      if (seen.has(a[0])) fail(what, j, `duplicate attribute '${a[0]}' in <${name}>`);
      seen.add(a[0]);
      j += a[0].length;
      while (/\s/.test(xml[j] ?? "")) j++;
      if (xml[j] !== "=") fail(what, j, `expected '=' after attribute '${a[0]}'`);
      j++;
      while (/\s/.test(xml[j] ?? "")) j++;
      const q = xml[j];
      if (q !== '"' && q !== "'") fail(what, j, `attribute '${a[0]}' value is not quoted`);
      const e = xml.indexOf(q, j + 1);
      if (e < 0) fail(what, j, `unterminated value of attribute '${a[0]}'`);
      const v = xml.slice(j + 1, e);
      if (v.includes("<")) fail(what, j + 1 + v.indexOf("<"), `'<' inside attribute '${a[0]}'`);
      checkText(v, j + 1, what);
      j = e + 1;
    }
    i = j;
  }
  if (stack.length > 0) fail(what, xml.length, `unclosed <${stack[stack.length - 1]}>`);
  if (!root) fail(what, 0, "no root element");
  return root;
}

/** {@link checkXml} plus: the root is `<svg>` in the SVG namespace. */
export function checkSvg(svg: string, what = "svg"): void {
  const root = checkXml(svg, what);
  if (root !== "svg") throw new Error(`${what}: root element is <${root}>, expected <svg>.`);
  if (!/^<svg[^>]*\sxmlns="http:\/\/www\.w3\.org\/2000\/svg"/.test(svg.trimStart())) {
    throw new Error(`${what}: <svg> lacks xmlns="http://www.w3.org/2000/svg" (GitHub would not render it).`);
  }
}

/** The decoded `aria-label` texts of an SVG (vega writes one per data mark: "step: 10; loss: 0.7"). */
export function ariaLabels(svg: string): string[] {
  return [...svg.matchAll(/aria-label="([^"]*)"/g)].map((m) =>
    m[1].replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">")
      .replace(/&amp;/g, "&")
  );
}

import assert from "assert";
import { checkSvg, checkXml, normalizeSvgIds, renderVegaLite } from "../lib/report/svg.ts";
import * as f from "../lib/report/format.ts";
import { publishedFor } from "../lib/report/published.ts";
import { thin } from "../lib/report/charts.ts";

const NS = 'xmlns="http://www.w3.org/2000/svg"';

Deno.test("checkXml accepts well-formed documents", () => {
  assert.equal(
    checkXml(
      `<?xml version="1.0"?>\n<svg ${NS}><g a='1' b="x &amp; y"/><!-- c --><text>1 &lt; 2 &#38; &#x26;</text></svg>\n`,
    ),
    "svg",
  );
  assert.equal(checkXml("<a><![CDATA[ <not> & tags ]]></a>"), "a");
  checkSvg(`<svg ${NS} width="2"><rect/></svg>`);
});

Deno.test("checkXml rejects each kind of malformation, naming the offset", () => {
  const bad: [string, RegExp][] = [
    ["<a><b></a></b>", /offset 6: end tag <\/a> does not match <b>/],
    ["<a><b></b>", /unclosed <a>/],
    ["<a x=1/>", /attribute 'x' value is not quoted/],
    ['<a x="1" x="2"/>', /duplicate attribute 'x'/],
    ['<a x="1"y="2"/>', /expected whitespace/],
    ["<a>fish & chips</a>", /bare '&'/],
    ["<a>&nbsp;</a>", /unknown entity/],
    ["<a>1 < 2</a>", /stray '<'/],
    ["<a/><b/>", /second root element/],
    ["text<a/>", /text outside the root element/],
    ["<a><!-- open</a>", /unterminated comment/],
    ["<!DOCTYPE svg><svg/>", /DOCTYPE/],
    ['<a x="<"/>', /'<' inside attribute/],
    ["", /no root element/],
  ];
  for (const [xml, re] of bad) assert.throws(() => checkXml(xml, "t.svg"), re, xml);
  assert.throws(
    () => checkXml("<a></b>", "fig.svg"),
    /^Error: fig\.svg: not well-formed XML at byte offset 3/,
  );
  assert.throws(() => checkSvg("<html/>"), /root element is <html>/);
  assert.throws(() => checkSvg("<svg/>"), /lacks xmlns/);
});

Deno.test("normalizeSvgIds renumbers clip and gradient ids by first appearance", () => {
  const a = `<svg><clipPath id="clip7"/><g clip-path="url(#clip7)"/><g clip-path="url(#clip9)"/>` +
    `<linearGradient id="gradient_4"/><rect fill="url(#gradient_4)"/><text>clip7</text></svg>`;
  assert.equal(
    normalizeSvgIds(a),
    `<svg><clipPath id="clip1"/><g clip-path="url(#clip1)"/><g clip-path="url(#clip2)"/>` +
      `<linearGradient id="gradient_0"/><rect fill="url(#gradient_0)"/><text>clip7</text></svg>`,
  );
});

Deno.test("renderVegaLite gives the same well-formed bytes every time", async () => {
  const spec = {
    data: { values: [{ x: 1, y: 2 }, { x: 2, y: 0.5 }] },
    mark: { type: "point" },
    encoding: {
      x: { field: "x", type: "quantitative" },
      y: { field: "y", type: "quantitative" },
      color: { field: "y", type: "quantitative" }, // gradient legend: a numbered def
    },
  };
  const a = await renderVegaLite(spec);
  const b = await renderVegaLite(spec);
  assert.equal(a, b);
  checkSvg(a);
  assert.match(a, /aria-label="x: 2; y: 0\.5"/);
  assert.match(a, /id="gradient_0"/);
});

Deno.test("formatters are fixed-precision and parseCell inverts them", () => {
  assert.equal(f.pct(0.813), "81.30 %");
  assert.equal(f.pct(-0.00001), "0.00 %");
  assert.equal(f.pct(NaN), "—");
  assert.equal(f.pct(null), "—");
  assert.equal(f.pts(-0.0823), "−8.23 pts");
  assert.equal(f.pts(0.01), "+1.00 pts");
  assert.equal(f.pts(-0.00001), "+0.00 pts");
  assert.equal(f.int(23576165), "23,576,165");
  assert.equal(f.int(999), "999");
  assert.equal(f.int(1000), "1,000");
  assert.equal(f.bytes(512), "512 B");
  assert.equal(f.bytes(1536), "1.50 KiB");
  assert.equal(f.bytes(94_371_840), "90.00 MiB");
  assert.equal(f.ms(1.005), "1.00 ms"); // binary 1.005 is below 1.005
  assert.equal(f.ips(1234.56), "1234.6 img/s");
  assert.equal(f.times(4.3921), "4.39×");
  assert.equal(f.duration(12.34), "12.3 s");
  assert.equal(f.duration(185), "3 min 05 s");
  assert.equal(f.duration(3725), "1 h 02 min");
  assert.equal(f.cell("a|b<c>&"), "a\\|b&lt;c&gt;&amp;");
  for (
    const [s, v] of [
      ["81.30 %", 0.813],
      ["−8.23 pts", -0.0823],
      ["23,576,165", 23576165],
      ["1.50 KiB", 1536],
      ["4.39×", 4.39],
      ["**3.20×**", 3.2],
      ["12.50 ms", 12.5],
    ] as const
  ) {
    assert.ok(Math.abs(f.parseCell(s)! - v) < 1e-12, s);
  }
  assert.equal(f.parseCell("—"), null);
  assert.throws(() => f.parseCell("abc"), /cannot parse "abc"/);
});

Deno.test("published numbers are found by dataset name", () => {
  assert.equal(publishedFor("pets37")?.teacher_top1, 0.9092);
  assert.deepEqual(publishedFor("pets37-sample")?.students.map((s) => [s.top1, s.epochs]), [[0.813, 300], [
    0.86,
    1000,
  ]]);
  assert.equal(publishedFor("flowers102")?.students[0].top1, 0.8102);
  assert.equal(publishedFor("food101")?.teacher_top1, 0.8552);
  assert.equal(publishedFor("cifar10"), null);
});

Deno.test("thin keeps first and last, evenly spaced", () => {
  const xs = Array.from({ length: 1001 }, (_, i) => i);
  const t = thin(xs, 11);
  assert.deepEqual(t, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  assert.equal(thin(xs.slice(0, 5), 11).length, 5);
});

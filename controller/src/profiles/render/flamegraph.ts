/**
 * Our own SVG flamegraph, with flamegraph.pl's conventions: the root at the bottom, a frame's
 * width proportional to its samples, children in alphabetical order (so two graphs of the same
 * program line up), frames narrower than `minWidth` pixels left out, warm random-looking
 * colours (stable per name), and embedded JavaScript for search (regex, matched %) and
 * click-to-zoom. With a base profile it is a differential flamegraph (flamegraph.pl's
 * difffolded): widths from this profile, red where a frame grew since the base, blue where it
 * shrank, in shares of all samples.
 */
import type { WeightedStack } from '../model.ts';

export interface FlameOptions {
  title: string;
  subtitle?: string;
  width?: number;
  frameHeight?: number;
  minWidth?: number;
  /** Differential: stacks of the base profile. */
  base?: WeightedStack[];
}

interface FlameNode {
  name: string;
  total: number;
  children: Map<string, FlameNode>;
  /** Differential: this path's samples in the base. */
  baseTotal: number;
}

function newNode(name: string): FlameNode {
  return { name, total: 0, children: new Map(), baseTotal: 0 };
}

export function buildTree(stacks: readonly WeightedStack[], base?: readonly WeightedStack[]): FlameNode {
  const root = newNode('all');
  for (const s of stacks) {
    let node = root;
    node.total += s.count;
    for (const name of s.names) {
      let child = node.children.get(name);
      if (!child) node.children.set(name, (child = newNode(name)));
      child.total += s.count;
      node = child;
    }
  }
  for (const s of base ?? []) {
    let node: FlameNode | undefined = root;
    root.baseTotal += s.count;
    for (const name of s.names) {
      node = node.children.get(name);
      if (!node) break;
      node.baseTotal += s.count;
    }
  }
  return root;
}

/**
 * Text for an XML attribute or element. Characters XML 1.0 forbids (control characters, which a
 * process may put in its comm, and lone surrogates) become U+FFFD: one of them would make the
 * whole SVG unreadable to a browser.
 */
function escapeXml(s: string): string {
  return (
    s
      // eslint-disable-next-line no-control-regex -- the control characters are what it replaces
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
  );
}

/** flamegraph.pl's "hot" palette, seeded by the name so a function keeps its colour. */
function hotColour(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  const v1 = (h & 0xff) / 255;
  const v2 = ((h >>> 8) & 0xff) / 255;
  const v3 = ((h >>> 16) & 0xff) / 255;
  if (name.endsWith('_[k]')) return `rgb(${Math.round(205 + 50 * v3)},${Math.round(120 + 60 * v1)},${Math.round(30 * v2)})`;
  return `rgb(${Math.round(205 + 50 * v3)},${Math.round(230 * v1)},${Math.round(55 * v2)})`;
}

function diffColour(delta: number, maxAbs: number): string {
  if (maxAbs === 0 || delta === 0) return 'rgb(250,250,250)';
  const strength = Math.round(210 * Math.min(1, Math.abs(delta) / maxAbs));
  return delta > 0 ? `rgb(255,${250 - strength},${250 - strength})` : `rgb(${250 - strength},${250 - strength},255)`;
}

const FONT = 12;
const CHAR_WIDTH = FONT * 0.59;
const PAD = 10;
/** Room above the frames for the title, subtitle and controls. */
const TOP = FONT * 3 + 8;

function label(name: string, width: number): string {
  const chars = Math.floor((width - 6) / CHAR_WIDTH);
  if (chars < 3) return '';
  return name.length <= chars ? name : `${name.slice(0, chars - 2)}..`;
}

export function renderFlamegraph(stacks: readonly WeightedStack[], opts: FlameOptions): string {
  const width = opts.width ?? 1200;
  const frameHeight = opts.frameHeight ?? 16;
  const root = buildTree(stacks, opts.base);
  const diff = opts.base !== undefined;
  const layout = placeFrames(root, { scale: root.total > 0 ? (width - 2 * PAD) / root.total : 0, minWidth: opts.minWidth ?? 0.1, diff });
  const height = TOP + (layout.maxDepth + 1) * frameHeight + FONT * 2 + 10;
  const frames = layout.placed.map((p) => frameSvg(p, { root, diff, maxAbsDelta: layout.maxAbsDelta, frameHeight, height }));
  const subtitle = opts.subtitle ?? `${root.total} samples${diff ? `, base ${root.baseTotal} samples (red: more than the base, blue: less)` : ''}`;
  return `<?xml version="1.0" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" data-total="${root.total}">
<style type="text/css">
  text { font-family: Verdana, sans-serif; font-size: ${FONT}px; fill: rgb(0,0,0); }
  .f:hover rect { stroke: black; stroke-width: 0.5; cursor: pointer; }
  #title { text-anchor: middle; font-size: ${FONT + 5}px; }
  #subtitle { text-anchor: middle; fill: rgb(100,100,100); }
  .ctl { cursor: pointer; }
</style>
<rect x="0" y="0" width="${width}" height="${height}" fill="rgb(248,248,248)"/>
<text id="title" x="${width / 2}" y="${FONT + 8}">${escapeXml(opts.title)}</text>
<text id="subtitle" x="${width / 2}" y="${FONT * 2 + 10}">${escapeXml(subtitle)}</text>
<text id="reset" class="ctl" x="${PAD}" y="${FONT * 2 + 10}" opacity="0">Reset Zoom</text>
<text id="search" class="ctl" x="${width - PAD - 60}" y="${FONT * 2 + 10}">Search</text>
<text id="matched" x="${width - PAD - 160}" y="${height - 8}"></text>
<text id="details" x="${PAD}" y="${height - 8}"> </text>
<g id="frames">
${frames.join('\n')}
</g>
<script type="text/ecmascript"><![CDATA[
${interactionScript(width)}
]]></script>
</svg>
`;
}

interface Placed {
  node: FlameNode;
  x: number;
  w: number;
  depth: number;
}

function share(n: number, of: number): number {
  return of > 0 ? n / of : 0;
}

/** Differential: the change of a frame's share of all samples since the base. */
function delta(node: FlameNode, root: FlameNode): number {
  return share(node.total, root.total) - share(node.baseTotal, root.baseTotal);
}

/** Every frame at least `minWidth` pixels wide, at its x and depth, children in alphabetical order. */
function placeFrames(root: FlameNode, o: { scale: number; minWidth: number; diff: boolean }): { placed: Placed[]; maxDepth: number; maxAbsDelta: number } {
  const out = { placed: [] as Placed[], maxDepth: 0, maxAbsDelta: 0 };
  const place = (node: FlameNode, x: number, depth: number): void => {
    const w = node.total * o.scale;
    if (w < o.minWidth) return;
    out.placed.push({ node, x, w, depth });
    out.maxDepth = Math.max(out.maxDepth, depth);
    if (o.diff) out.maxAbsDelta = Math.max(out.maxAbsDelta, Math.abs(delta(node, root)));
    let cx = x;
    const children = [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const c of children) {
      place(c, cx, depth + 1);
      cx += c.total * o.scale;
    }
  };
  place(root, PAD, 0);
  return out;
}

/** One frame: its box, its label, and a tooltip with its samples (and, differential, its change). */
function frameSvg({ node, x, w, depth }: Placed, o: { root: FlameNode; diff: boolean; maxAbsDelta: number; frameHeight: number; height: number }): string {
  const { root, frameHeight } = o;
  const y = o.height - FONT * 2 - 10 - (depth + 1) * frameHeight;
  const pct = (100 * share(node.total, root.total)).toFixed(2);
  let title = `${node.name} (${node.total} samples, ${pct}%)`;
  let fill: string;
  if (o.diff) {
    const d = delta(node, root);
    title += `; base ${node.baseTotal} samples (${(100 * share(node.baseTotal, root.baseTotal)).toFixed(2)}%), change ${d >= 0 ? '+' : ''}${(100 * d).toFixed(2)} points`;
    fill = diffColour(d, o.maxAbsDelta);
  } else {
    fill = depth === 0 ? 'rgb(200,200,200)' : hotColour(node.name);
  }
  return (
    `<g class="f" data-d="${depth}"><title>${escapeXml(title)}</title>` +
    `<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${frameHeight - 1}" fill="${fill}" rx="2" ry="2" data-name="${escapeXml(node.name)}"/>` +
    `<text x="${(x + 3).toFixed(2)}" y="${y + frameHeight - 5}">${escapeXml(label(node.name, w))}</text></g>`
  );
}

/** The embedded JavaScript: click to zoom, Reset Zoom, and regex search with the matched share. */
function interactionScript(width: number): string {
  return `(function () {
  var W = ${width}, PAD = ${PAD}, CW = ${CHAR_WIDTH}, svg = document.documentElement;
  var gs = Array.prototype.slice.call(document.querySelectorAll('g.f'));
  gs.forEach(function (g) { var r = g.querySelector('rect'); g._x = +r.getAttribute('x'); g._w = +r.getAttribute('width'); g._d = +g.getAttribute('data-d'); g._n = r.getAttribute('data-name'); });
  function fit(g, x, w) {
    var r = g.querySelector('rect'), t = g.querySelector('text');
    r.setAttribute('x', x); r.setAttribute('width', w); t.setAttribute('x', x + 3);
    var n = Math.floor((w - 6) / CW), s = g._n;
    t.textContent = n < 3 ? '' : (s.length <= n ? s : s.slice(0, n - 2) + '..');
  }
  function zoom(z) {
    var x0 = z._x, w0 = z._w, k = (W - 2 * PAD) / w0;
    gs.forEach(function (g) {
      var inside = g._x >= x0 - 0.0001 && g._x + g._w <= x0 + w0 + 0.0001;
      if (g._d < z._d) {
        var covers = g._x <= x0 + 0.0001 && g._x + g._w >= x0 + w0 - 0.0001;
        g.style.display = covers ? '' : 'none';
        if (covers) { fit(g, PAD, W - 2 * PAD); g.style.opacity = 0.6; }
      } else if (inside) {
        g.style.display = ''; g.style.opacity = 1; fit(g, PAD + (g._x - x0) * k, g._w * k);
      } else { g.style.display = 'none'; }
    });
    document.getElementById('reset').setAttribute('opacity', 1);
  }
  function reset() {
    gs.forEach(function (g) { g.style.display = ''; g.style.opacity = 1; fit(g, g._x, g._w); });
    document.getElementById('reset').setAttribute('opacity', 0);
  }
  function search(re) {
    var spans = [];
    gs.forEach(function (g) {
      var r = g.querySelector('rect');
      if (!r.hasAttribute('data-fill')) r.setAttribute('data-fill', r.getAttribute('fill'));
      if (re && re.test(g._n)) { r.setAttribute('fill', 'rgb(230,0,230)'); spans.push([g._x, g._x + g._w]); }
      else r.setAttribute('fill', r.getAttribute('data-fill'));
    });
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -1;
    spans.forEach(function (s) { if (s[0] >= end) { covered += s[1] - s[0]; end = s[1]; } else if (s[1] > end) { covered += s[1] - end; end = s[1]; } });
    document.getElementById('matched').textContent = re ? 'Matched: ' + (100 * covered / (W - 2 * PAD)).toFixed(1) + '%' : '';
  }
  svg.addEventListener('click', function (e) {
    var t = e.target, g = t.closest ? t.closest('g.f') : null;
    if (g) { zoom(g); return; }
    if (t.id === 'reset') reset();
    if (t.id === 'search') {
      var term = prompt('Search for (regular expression):', '');
      if (term === null) return;
      try { search(term === '' ? null : new RegExp(term)); } catch (err) { alert('Bad regular expression: ' + err.message); }
    }
  });
  svg.addEventListener('mouseover', function (e) {
    var g = e.target.closest ? e.target.closest('g.f') : null;
    if (g) document.getElementById('details').textContent = g.querySelector('title').textContent;
  });
  window.flamegraph = { zoom: zoom, reset: reset, search: search };
})();`;
}

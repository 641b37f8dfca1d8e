// The dashboard's charts, drawn as SVG by this file (no chart library): the
// cap burn-down of a year and a small sparkline. They only place the API's
// values on axes; the figures themselves (cumulative energy, projection,
// cap) are the API's, and each point carries a <title> with the figure and
// its data-figure source so the test can check it like any other number.

const NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, children = []) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of [].concat(children)) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

// A round step for about n ticks up to max.
function niceStep(max, n) {
  const raw = max / n;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function shortNumber(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 === 0 ? 0 : 1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(0) + "k";
  return String(v);
}

/* burnDown(opts) -> <svg>
 *   start, end     ISO times of the year (the ytd figures' start and end)
 *   monthStarts    ISO times of the 12 month starts (axis ticks)
 *   monthLabels    12 labels
 *   bars           [{start, end, kwh, title, fig}] monthly energy
 *   points         [{t, kwh, title, fig}] cumulative energy at each month's as_of
 *   now            {t, kwh, title, fig}   year to date (ytd figures)
 *   projected      {kwh, title, fig}      at year end, or null
 *   cap            {kwh, title, fig}      approved, or null
 *   labels         {cumulative, projection, cap, monthly}
 * Every title is already formatted by the caller; fig is "endpoint:path". */
export function burnDown(o) {
  const W = 760, H = 300, L = 64, R = 16, T = 16, B = 40;
  const t0 = Date.parse(o.start), t1 = Date.parse(o.end);
  const ys = [o.now ? o.now.kwh : 0];
  if (o.cap) ys.push(o.cap.kwh);
  if (o.projected && o.projected.kwh !== null) ys.push(o.projected.kwh);
  for (const p of o.points) ys.push(p.kwh ?? 0);
  let ymax = Math.max(1, ...ys) * 1.08;
  const step = niceStep(ymax, 5);
  ymax = Math.ceil(ymax / step) * step;
  const x = (iso) => L + ((Date.parse(iso) - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const barMax = Math.max(1, ...o.bars.map((b) => b.kwh ?? 0));

  const g = [];
  // grid and y axis
  for (let v = 0; v <= ymax + step / 2; v += step) {
    g.push(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }));
    g.push(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, shortNumber(v)));
  }
  // month ticks
  o.monthStarts.forEach((s, i) => {
    const xs = x(s);
    g.push(svg("line", { x1: xs, x2: xs, y1: H - B, y2: H - B + 5, class: "tick" }));
    const next = i + 1 < o.monthStarts.length ? x(o.monthStarts[i + 1]) : W - R;
    g.push(svg("text", { x: (xs + next) / 2, y: H - B + 18, class: "axis", "text-anchor": "middle" }, o.monthLabels[i]));
  });
  g.push(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis-line" }));
  // monthly bars, scaled to the lower quarter of the plot: a shape, not a second axis
  for (const b of o.bars) {
    if (b.kwh === null || b.kwh === undefined) continue;
    const x0 = x(b.start), x1 = x(b.end);
    const h = (b.kwh / barMax) * (H - T - B) * 0.25;
    g.push(svg("rect", { x: x0 + 2, y: H - B - h, width: Math.max(1, x1 - x0 - 4), height: h, class: "bar" },
      [svg("title", { "data-figure": b.fig, "data-format": "fixed:0" }, b.title)]));
  }
  // the cap
  if (o.cap) {
    g.push(svg("line", { x1: L, x2: W - R, y1: y(o.cap.kwh), y2: y(o.cap.kwh), class: "cap-line" },
      [svg("title", { "data-figure": o.cap.fig, "data-format": "fixed:0" }, o.cap.title)]));
    g.push(svg("text", { x: W - R - 4, y: y(o.cap.kwh) - 6, class: "cap-label", "text-anchor": "end" }, o.labels.cap));
  }
  // cumulative energy: from the year's start through each month's as_of to now
  const pts = [[L, y(0)]];
  for (const p of o.points) if (p.kwh !== null && p.kwh !== undefined) pts.push([x(p.t), y(p.kwh)]);
  if (o.now && o.now.kwh !== null) pts.push([x(o.now.t), y(o.now.kwh)]);
  g.push(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: "cum-line" }));
  for (const p of o.points) {
    if (p.kwh === null || p.kwh === undefined) continue;
    g.push(svg("circle", { cx: x(p.t), cy: y(p.kwh), r: 3, class: "cum-point" },
      [svg("title", { "data-figure": p.fig, "data-format": "fixed:0" }, p.title)]));
  }
  // the projection: from now to the year's end
  if (o.now && o.projected && o.projected.kwh !== null) {
    g.push(svg("line", { x1: x(o.now.t), y1: y(o.now.kwh), x2: W - R, y2: y(o.projected.kwh), class: "proj-line" }));
    g.push(svg("circle", { cx: W - R, cy: y(o.projected.kwh), r: 4, class: "proj-point" },
      [svg("title", { "data-figure": o.projected.fig, "data-format": "fixed:0" }, o.projected.title)]));
  }
  if (o.now && o.now.kwh !== null) {
    g.push(svg("circle", { cx: x(o.now.t), cy: y(o.now.kwh), r: 4.5, class: "now-point" },
      [svg("title", { "data-figure": o.now.fig, "data-format": "fixed:0" }, o.now.title)]));
  }
  // legend
  const lg = [["cum-line", o.labels.cumulative], ["proj-line", o.labels.projection], ["cap-line", o.labels.cap]];
  lg.forEach(([cls, text], i) => {
    const lx = L + 10 + i * 170;
    g.push(svg("line", { x1: lx, x2: lx + 24, y1: T + 6, y2: T + 6, class: cls }));
    g.push(svg("text", { x: lx + 30, y: T + 10, class: "legend" }, text));
  });
  g.push(svg("rect", { x: L + 10 + 3 * 170, y: T, width: 14, height: 10, class: "bar" }));
  g.push(svg("text", { x: L + 30 + 3 * 170, y: T + 10, class: "legend" }, o.labels.monthly));
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart burn-down", role: "img" }, g);
}

// A sparkline of the values seen since the page loaded (live power).
export function sparkline(values, w = 220, h = 40) {
  const vs = values.filter((v) => v !== null && v !== undefined);
  const e = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "spark", "aria-hidden": "true" });
  if (vs.length < 2) return e;
  const lo = Math.min(...vs), hi = Math.max(...vs);
  const span = hi - lo || 1;
  const pts = vs.map((v, i) => `${(i / (vs.length - 1)) * (w - 4) + 2},${h - 3 - ((v - lo) / span) * (h - 6)}`);
  e.appendChild(svg("polyline", { points: pts.join(" "), class: "spark-line" }));
  return e;
}

// Hand-written SVG charts: bars for categories, lines over time, sparklines for the warning board.
// Every label is set with textContent; each drawn value carries data-value so tests can read it.

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axis(svg, x0, y0, w, h, lo, hi, fmt) {
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    const y = y0 + h - (h * i) / 4;
    svg.append(el("line", { x1: x0, x2: x0 + w, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: x0 - 6, y: y + 4, "text-anchor": "end", class: "tick" }, fmt(v)));
  }
}

/**
 * Bars: items [{label, value (number|null), note}]; a null value is drawn as an empty slot with its
 * note (e.g. "<10") instead of a bar.
 */
export function bars(items, { title, fmt = String } = {}) {
  const bw = 36;
  const gap = 14;
  const x0 = 64;
  const h = 220;
  const w = Math.max(320, items.length * (bw + gap) + gap);
  const svg = el("svg", { viewBox: `0 0 ${x0 + w + 10} ${h + 110}`, role: "img", class: "chart bars" });
  svg.append(el("title", {}, title || "柱状图"));
  const vals = items.map((d) => d.value).filter((v) => typeof v === "number");
  const lo = Math.min(0, ...vals);
  const hi = niceMax(Math.max(0, ...vals));
  const span = hi - lo || 1;
  const y = (v) => 20 + h - ((v - lo) / span) * h;
  axis(svg, x0, 20, w, h, lo, hi, fmt);
  items.forEach((d, i) => {
    const x = x0 + gap + i * (bw + gap);
    const g = el("g", { class: "bar" });
    if (typeof d.value === "number") {
      const top = Math.min(y(d.value), y(0));
      const r = el("rect", { x, y: top, width: bw, height: Math.max(1, Math.abs(y(d.value) - y(0))), "data-value": d.value });
      r.append(el("title", {}, `${d.label}：${fmt(d.value)}`));
      g.append(r, el("text", { x: x + bw / 2, y: top - 4, "text-anchor": "middle", class: "val" }, fmt(d.value)));
    } else {
      g.append(
        el("rect", { x, y: y(0) - 2, width: bw, height: 2, class: "empty", "data-value": "" }),
        el("text", { x: x + bw / 2, y: y(0) - 6, "text-anchor": "middle", class: "val muted" }, d.note || "—"),
      );
    }
    g.append(el("text", { x: x + bw / 2, y: h + 36, "text-anchor": "end", transform: `rotate(-40 ${x + bw / 2} ${h + 36})`, class: "lbl" }, d.label));
    svg.append(g);
  });
  return svg;
}

const PALETTE = ["#1f5fa8", "#c0392b", "#27865f", "#8e44ad", "#d35400", "#2c3e50", "#16a085", "#7f8c8d"];

/**
 * Lines over time: xs = ordered time labels, series = [{name, points: Map(x → number|null)}];
 * a missing or null point breaks the line.
 */
export function lines(xs, series, { title, fmt = String } = {}) {
  const x0 = 64;
  const w = Math.max(360, xs.length * 48);
  const h = 220;
  const svg = el("svg", { viewBox: `0 0 ${x0 + w + 160} ${h + 80}`, role: "img", class: "chart lines" });
  svg.append(el("title", {}, title || "折线图"));
  const vals = series.flatMap((s) => [...s.points.values()].filter((v) => typeof v === "number"));
  const lo = Math.min(0, ...vals);
  const hi = niceMax(Math.max(0, ...vals));
  const span = hi - lo || 1;
  const px = (i) => x0 + (xs.length === 1 ? w / 2 : (i * w) / (xs.length - 1));
  const py = (v) => 20 + h - ((v - lo) / span) * h;
  axis(svg, x0, 20, w, h, lo, hi, fmt);
  const step = Math.ceil(xs.length / 12);
  xs.forEach((x, i) => {
    if (i % step === 0) svg.append(el("text", { x: px(i), y: h + 40, "text-anchor": "middle", class: "lbl" }, x));
  });
  series.forEach((s, k) => {
    const colour = PALETTE[k % PALETTE.length];
    let d = "";
    let pen = false;
    const g = el("g", { class: "series", "data-name": s.name });
    xs.forEach((x, i) => {
      const v = s.points.get(x);
      if (typeof v !== "number") {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${px(i).toFixed(1)},${py(v).toFixed(1)}`;
      pen = true;
      const c = el("circle", { cx: px(i), cy: py(v), r: 3, fill: colour, "data-value": v });
      c.append(el("title", {}, `${s.name} ${x}：${fmt(v)}`));
      g.append(c);
    });
    g.prepend(el("path", { d, fill: "none", stroke: colour, "stroke-width": 2 }));
    svg.append(g);
    svg.append(el("rect", { x: x0 + w + 20, y: 20 + k * 18, width: 10, height: 10, fill: colour }));
    svg.append(el("text", { x: x0 + w + 36, y: 29 + k * 18, class: "lbl" }, s.name));
  });
  return svg;
}

/** A small line of values (null breaks it), for a trend beside a number. */
export function sparkline(values, { label } = {}) {
  const w = 120;
  const h = 30;
  const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, class: "spark", role: "img" });
  svg.append(el("title", {}, label || "趋势"));
  const nums = values.filter((v) => typeof v === "number");
  if (!nums.length) return svg;
  const lo = Math.min(...nums);
  const hi = Math.max(...nums);
  const span = hi - lo || 1;
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (typeof v !== "number") {
      pen = false;
      return;
    }
    const x = values.length === 1 ? w / 2 : 2 + (i * (w - 4)) / (values.length - 1);
    const y = h - 3 - ((v - lo) / span) * (h - 6);
    d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  });
  svg.append(el("path", { d, fill: "none", class: "spark-line" }));
  return svg;
}

// How an answer of POST /v1/query is shown: the table (names beside codes, `<k` for suppressed cells,
// partial rows with the missing nodes named), the chart and the CSV for Excel; plus the small DOM and
// naming helpers the views share. Every piece of data goes in as text (textContent, setAttribute).

import { bars, lines } from "./chart.js";
import { DISTRICTS, CITIES, PROVINCES } from "./regions.js";

// ------------------------------------------------------------------ small helpers

/** Creates an element; attrs are attributes (or listeners for `on…`), children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}


export const DIM_NAMES = {
  region: "地区",
  "region:city": "地区（市）",
  "region:province": "地区（省）",
  court: "法院",
  division: "审判领域",
  instance: "审级",
  type_code: "案件类型",
  cause: "案由",
  year: "年",
  quarter: "季度",
  month: "月",
  dispute_type: "纠纷类型",
};
export const KIND_NAMES = { count: "计数", ratio: "比率", mean: "均值", per_population: "每万人", deviation: "偏离度" };
export const LEVELS = {
  green: { text: "绿色 · 正常", short: "正常" },
  yellow: { text: "黄色 · 关注", short: "关注" },
  red: { text: "红色 · 预警", short: "预警" },
};
export const TIME_DIMS = ["year", "quarter", "month"];
export const dimName = (d) => DIM_NAMES[d] || d;
export const baseDim = (d) => d.split(":")[0];

/** The name of a region code (district, city or province), or "". */
export function regionName(code) {
  const c = String(code);
  if (c.length === 6 && c.endsWith("0000")) return PROVINCES[c.slice(0, 2)] || "";
  if (c.length === 6 && c.endsWith("00")) return CITIES[c.slice(0, 4)] || "";
  return DISTRICTS[c] || CITIES[c] || PROVINCES[c] || "";
}

/** The name of a court code (闽0213 → 翔安区人民法院), or "". */
export function courtName(code) {
  const m = /^闽(\d{4})$/.exec(String(code));
  const d = m && DISTRICTS[`35${m[1]}`];
  return d ? `${d}人民法院` : "";
}

export function placeName(dim, value) {
  if (dim === "region") return regionName(value);
  if (dim === "court") return courtName(value);
  return "";
}

export function fmtValue(kind, v) {
  if (typeof v !== "number") return "—";
  switch (kind) {
    case "ratio":
      return `${(v * 100).toFixed(2)}%`;
    case "deviation":
      return `${v >= 0 ? "+" : ""}${(v * 100).toFixed(2)}%`;
    case "per_population":
      return v.toFixed(2);
    case "mean":
      return v.toFixed(1);
    default:
      return String(v);
  }
}


export function missingText(cov) {
  return (cov.missing || []).map((m) => `${m.node}（${m.reason}）`).join("；");
}

/** Shows an answer: provenance, partial/suppression notes, the table, the chart, CSV export. */
export function renderAnswer(root, ans, groupBy, req, info = { name: ans.indicator, kind: "count" }) {
  const kind = info.kind || "count";
  const k = ans.threshold || 10;
  const cov = ans.coverage || { asked: 0, answered: 0, missing: [] };
  const levels = ans.rows.some((r) => r.level) || kind === "deviation";
  root.append(
    h(
      "p",
      { class: "provenance", id: "provenance", "data-audit-seq": ans.audit_seq },
      `${info.name}：审计序号 #${ans.audit_seq} · 节点应答 ${cov.answered}/${cov.asked} · 数据截至 ${ans.data_until || "—"} · 策略版本 ${ans.policy_version}`,
    ),
  );
  if ((cov.missing || []).length) {
    root.append(h("p", { class: "partial-note", id: "missing-nodes", role: "status" }, `部分结果：缺少节点 ${missingText(cov)}。标为“部分”的行不含这些节点的数据。`));
  }
  const headers = [...groupBy.map(dimName), "值", "分子", "分母", "状态"];
  if (levels) headers.push("级别");
  const tbody = h("tbody");
  for (const r of ans.rows) {
    const cells = groupBy.map((d) => {
      const v = (r.group || {})[d] ?? "";
      const name = placeName(d, v);
      return h("td", { "data-dim": d, "data-code": v }, v, name ? h("span", { class: "place" }, ` ${name}`) : null);
    });
    let valueCell;
    if (r.status === "suppressed") {
      valueCell = h("td", { class: "num suppressed", "data-value": "", title: `少于 ${k} 个贡献记录，已抑制` }, `<${k}`);
    } else if (r.status === "partial") {
      valueCell = h("td", { class: "num partial", "data-value": r.value ?? "" }, "部分");
    } else if (r.status === "no_baseline") {
      valueCell = h("td", { class: "num", "data-value": "" }, "无基线");
    } else {
      valueCell = h("td", { class: "num", "data-value": r.value ?? "" }, fmtValue(kind, r.value));
    }
    const statusText = { ok: "正常", suppressed: "已抑制", partial: `部分（缺少 ${(cov.missing || []).map((m) => m.node).join("、")}）`, no_baseline: "无基线" }[r.status] || r.status;
    const row = h(
      "tr",
      { "data-status": r.status },
      cells,
      valueCell,
      h("td", { class: "num", "data-value": r.numerator ?? "" }, r.numerator ?? ""),
      h("td", { class: "num", "data-value": r.denominator ?? "" }, r.denominator ?? ""),
      h("td", {}, statusText),
    );
    if (levels) row.append(levelCell(r.level));
    tbody.append(row);
  }
  root.append(
    h("table", { class: "data", id: "result-table" }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), tbody),
  );
  if (!ans.rows.length) root.append(h("p", { class: "muted" }, "没有数据：此期间没有符合条件的案件。"));
  if (ans.rows.some((r) => r.status === "suppressed")) {
    root.append(h("p", { class: "note", id: "suppression-note" }, `“<${k}”：该单元格的贡献记录少于 ${k} 条（或为防止相减推算而一并隐藏），为保护个人信息不予显示。`));
  }
  const chartBox = h("figure", { id: "chart" }, h("figcaption", {}, `${info.name}（${KIND_NAMES[kind] || kind}）`));
  chartBox.append(chartFor(ans, groupBy, info, k));
  root.append(chartBox);
  const csvBtn = h("button", { type: "button", id: "csv" }, "导出 CSV（Excel）");
  csvBtn.addEventListener("click", () => downloadCsv(ans, groupBy, kind, req));
  root.append(h("p", {}, csvBtn));
}

export function levelCell(level) {
  const l = LEVELS[level];
  return h("td", { class: `level level-${level || "none"}`, "data-level": level || "" }, l ? l.text : "—");
}

export function groupLabel(r, dims) {
  return dims
    .map((d) => {
      const v = (r.group || {})[d] ?? "";
      const n = placeName(d, v);
      return n || v;
    })
    .join(" · ");
}

export function chartFor(ans, groupBy, info, k) {
  const kind = info.kind || "count";
  const fmt = (v) => fmtValue(kind, v);
  const value = (r) => (r.status === "ok" && typeof r.value === "number" ? r.value : null);
  const timeDim = groupBy.find((d) => TIME_DIMS.includes(d));
  if (timeDim && ans.rows.length) {
    const rest = groupBy.filter((d) => d !== timeDim);
    const xs = [...new Set(ans.rows.map((r) => r.group[timeDim]))].sort();
    const series = new Map();
    for (const r of ans.rows) {
      const name = rest.length ? groupLabel(r, rest) : info.name || ans.indicator;
      if (!series.has(name)) series.set(name, { name, points: new Map() });
      series.get(name).points.set(r.group[timeDim], value(r));
    }
    return lines(xs, [...series.values()].slice(0, 8), { fmt });
  }
  const items = ans.rows.map((r) => ({
    label: groupBy.length ? groupLabel(r, groupBy) : "合计",
    value: value(r),
    note: r.status === "suppressed" ? `<${k}` : r.status === "partial" ? "部分" : "—",
  }));
  return bars(items, { fmt });
}

function csvCell(s) {
  const t = String(s ?? "");
  return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

/** CSV that Excel opens as UTF-8: a byte-order mark, CRLF line ends, quoted where needed. */
export function answerCsv(ans, groupBy) {
  const k = ans.threshold || 10;
  const levels = ans.rows.some((r) => r.level);
  const header = [];
  for (const d of groupBy) {
    header.push(d);
    if (d === "region" || d === "court") header.push(`${d}_name`);
  }
  header.push("value", "status", "numerator", "denominator");
  if (levels) header.push("level");
  const lines = [header];
  for (const r of ans.rows) {
    const row = [];
    for (const d of groupBy) {
      const v = (r.group || {})[d] ?? "";
      row.push(v);
      if (d === "region" || d === "court") row.push(placeName(d, v));
    }
    row.push(r.status === "suppressed" ? `<${k}` : (r.value ?? ""), r.status, r.numerator ?? "", r.denominator ?? "");
    if (levels) row.push(r.level || "");
    lines.push(row);
  }
  return `\uFEFF${lines.map((l) => l.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

export function downloadCsv(ans, groupBy, kind, req) {
  const blob = new Blob([answerCsv(ans, groupBy)], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `${ans.indicator}_${req.from}_${req.to}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}


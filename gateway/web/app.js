// 数助 web console: login, catalogue, query builder, warning board, court comparison, ledger browser
// with in-browser proof verification, access report. Plain ES modules, no build step.
//
// Every piece of data reaches the page through textContent or setAttribute (see `h`), never as
// markup to be parsed, so a label such as "<script>…" stays text.

import * as api from "./api.js";
import { sparkline } from "./chart.js";
import { KIND_NAMES, LEVELS, baseDim, dimName, fmtValue, h, levelCell, missingText, placeName, renderAnswer } from "./answer.js";
import { parseVerifierKey, verifyEntry } from "./verify.js";

const $ = (sel, root = document) => root.querySelector(sel);
const KEY_STORE = "shuzhu.ledgerKey";

function defaultYear() {
  return new Date().getFullYear() - 1;
}

// ------------------------------------------------------------------ state and routing

const state = { me: null, catalogue: null };

function roles() {
  return (state.me && state.me.roles) || [];
}

/** What the caller's grants allow, merged: {indicators, dimensions, filters, purposes}. */
function allowed() {
  const me = state.me || {};
  const grants = me.grants || (me.grant ? [me.grant] : []);
  const out = { indicators: new Set(), dimensions: new Set(), filters: new Set(), purposes: new Set(), legal: false };
  for (const g of grants) {
    (g.indicators || []).forEach((x) => out.indicators.add(x));
    (g.dimensions || []).forEach((x) => out.dimensions.add(x));
    (g.filters || []).forEach((x) => out.filters.add(x));
    (g.purposes || []).forEach((x) => out.purposes.add(x));
    if (g.legal_basis_required) out.legal = true;
  }
  return out;
}

async function catalogue() {
  if (!state.catalogue) state.catalogue = await api.indicators();
  return state.catalogue;
}

function indicatorInfo(id) {
  return (state.catalogue || []).find((i) => i.id === id);
}

const VIEWS = {
  catalogue: { title: "指标目录", role: "requester", render: viewCatalogue },
  query: { title: "查询", role: "requester", render: viewQuery },
  board: { title: "预警看板", role: "requester", render: (v) => viewBoard(v, "region") },
  court: { title: "法院对比", role: "requester", render: (v) => viewBoard(v, "court"), needs: "court" },
  audit: { title: "审计日志", role: "auditor", render: viewAudit },
  report: { title: "访问报告", role: "auditor", render: viewReport },
};

function renderNav() {
  const nav = $("#nav");
  nav.replaceChildren();
  const a = allowed();
  for (const [id, v] of Object.entries(VIEWS)) {
    if (!roles().includes(v.role)) continue;
    if (v.needs && !a.dimensions.has(v.needs)) continue;
    nav.append(h("a", { href: `#/${id}`, id: `nav-${id}` }, v.title));
  }
  nav.hidden = false;
  $("#logout").hidden = false;
  const me = state.me || {};
  $("#who").textContent = `${me.agency_name || me.agency || ""} · ${me.subject || me.sub || ""} · ${roles().join("、")}`;
}

async function route() {
  if (!api.token()) return showLogin();
  const [, name = "", arg] = (location.hash || "").split("/");
  const fallback = roles().includes("auditor") ? "audit" : "catalogue";
  const view = VIEWS[name] ? name : fallback;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${view}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // A fresh container per navigation: a slower earlier view still rendering writes into its own
  // detached container, never into the page shown now.
  const root = h("div", { "data-view": view }, h("h1", {}, VIEWS[view].title));
  $("#view").replaceChildren(root);
  document.title = `${VIEWS[view].title} · 数助`;
  try {
    await VIEWS[view].render(root, arg);
  } catch (e) {
    showError(root, e);
  }
}

function showError(root, e) {
  if (e instanceof api.ApiError && e.status === 401) {
    api.clearSession();
    return showLogin("令牌无效或已过期，请重新登录。");
  }
  const text =
    e instanceof api.ApiError && e.status === 403
      ? `拒绝访问：${e.message}`
      : e instanceof api.ApiError
        ? `请求失败（${e.status}）：${e.message}`
        : `出错了：${e.message}`;
  root.append(h("p", { class: "error refusal", role: "alert", "data-status": e.status || "" }, text));
}

function showLogin(message) {
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#view").replaceChildren();
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token-input").focus();
}

async function login(tokenText) {
  const t = (tokenText || "").trim();
  if (!t) {
    $("#login-error").textContent = "请先粘贴令牌或选择令牌文件。";
    return;
  }
  api.setToken(t);
  try {
    state.me = await api.me();
  } catch (e) {
    api.clearSession();
    $("#login-error").textContent =
      e instanceof api.ApiError && e.status === 401 ? "令牌无效或已过期。" : `登录失败：${e.message}`;
    return;
  }
  $("#login").hidden = true;
  $("#token-input").value = "";
  renderNav();
  await route();
}

/** Takes `#token=…&key=…&view=…` (the demo's link; fragments never reach the server) into the session. */
function consumeFragment() {
  const frag = location.hash.slice(1);
  if (!/^(token|key)=/.test(frag)) return null;
  const p = new URLSearchParams(frag);
  if (p.get("key")) sessionStorage.setItem(KEY_STORE, p.get("key"));
  const view = p.get("view") || "";
  history.replaceState(null, "", `${location.pathname}#/${VIEWS[view] ? view : ""}`);
  return p.get("token");
}

async function boot() {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login($("#token-input").value);
  });
  const readFile = async (file) => {
    if (!file) return;
    if (file.size > 64 * 1024) {
      $("#login-error").textContent = "这不是令牌文件（太大）。";
      return;
    }
    await login(await file.text());
  };
  $("#token-file").addEventListener("change", (ev) => readFile(ev.target.files[0]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    readFile(ev.dataTransfer.files[0]);
  });
  $("#logout").addEventListener("click", () => {
    api.clearSession();
    state.me = null;
    state.catalogue = null;
    history.replaceState(null, "", location.pathname);
    showLogin();
  });
  window.addEventListener("hashchange", () => state.me && route());
  const fromFragment = consumeFragment();
  if (fromFragment) return login(fromFragment);
  if (!api.token()) return showLogin();
  try {
    state.me = await api.me();
  } catch (e) {
    return showError($("#view"), e);
  }
  renderNav();
  await route();
}

// ------------------------------------------------------------------ catalogue

async function viewCatalogue(root) {
  const list = await catalogue();
  const a = allowed();
  root.append(h("p", {}, `共 ${list.length} 项指标；“可查询”表示您的授权包含该指标。`));
  const tbody = h("tbody");
  for (const i of list) {
    tbody.append(
      h(
        "tr",
        { "data-indicator": i.id },
        h("td", {}, h("strong", {}, i.name), h("br"), h("code", {}, i.id)),
        h("td", {}, i.formula || ""),
        h("td", {}, (i.dimensions || []).map(dimName).join("、")),
        h("td", {}, KIND_NAMES[i.kind] || i.kind || ""),
        h("td", {}, (i.datasets || []).join("、")),
        h("td", {}, i.grade || i.clearance || "—"),
        h("td", {}, a.indicators.has(i.id) ? "可查询" : "未授权"),
      ),
    );
  }
  root.append(
    h(
      "table",
      { class: "data", id: "catalogue" },
      h("thead", {}, h("tr", {}, ["指标", "公式", "维度", "类型", "数据集", "分级", "授权"].map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    ),
  );
}

// ------------------------------------------------------------------ query builder and answers

async function viewQuery(root) {
  const list = await catalogue();
  const a = allowed();
  const usable = list.filter((i) => a.indicators.has(i.id));
  if (!usable.length) {
    root.append(h("p", { class: "error" }, "您的授权不包含任何指标。"));
    return;
  }
  const year = defaultYear();
  const indSel = h("select", { id: "q-indicator", name: "indicator" }, usable.map((i) => h("option", { value: i.id }, `${i.name}（${i.id}）`)));
  const dims = h("fieldset", { id: "q-dims" }, h("legend", {}, "分组维度"));
  const filterDim = h("select", { id: "q-filter-dim" }, h("option", { value: "" }, "（不筛选）"), [...a.filters].map((d) => h("option", { value: d }, dimName(d))));
  const form = h(
    "form",
    { id: "query-form", class: "builder" },
    h("label", { for: "q-indicator" }, "指标"),
    indSel,
    dims,
    h("label", { for: "q-from" }, "起始月份"),
    h("input", { id: "q-from", name: "from", value: `${year}-01`, placeholder: "YYYY-MM", pattern: "\\d{4}-\\d{2}", required: true, inputmode: "numeric" }),
    h("label", { for: "q-to" }, "截止月份"),
    h("input", { id: "q-to", name: "to", value: `${year}-12`, placeholder: "YYYY-MM", pattern: "\\d{4}-\\d{2}", required: true, inputmode: "numeric" }),
    h("label", { for: "q-purpose" }, "用途"),
    h("select", { id: "q-purpose", name: "purpose" }, [...a.purposes].map((p) => h("option", { value: p }, p))),
    h("label", { for: "q-filter-dim" }, "筛选维度"),
    filterDim,
    h("label", { for: "q-filter-values" }, "筛选值（以逗号分隔）"),
    h("input", { id: "q-filter-values", name: "filter_values", placeholder: "例如 350203,350206" }),
    h("label", { for: "q-legal" }, a.legal ? "法律依据（必填）" : "法律依据（可选）"),
    h("input", { id: "q-legal", name: "legal_basis", required: a.legal }),
    h("button", { type: "submit", id: "q-submit" }, "查询"),
  );
  const result = h("div", { id: "result", "aria-live": "polite" });
  root.append(form, result);

  const fillDims = () => {
    const info = indicatorInfo(indSel.value) || {};
    const offered = (info.dimensions || []).filter((d) => a.dimensions.has(d));
    const options = offered.flatMap((d) => (d === "region" ? ["region", "region:city"] : [d]));
    dims.replaceChildren(h("legend", {}, "分组维度"));
    if (!options.length) dims.append(h("span", { class: "muted" }, "该指标在您的授权下不能分组。"));
    for (const d of options) {
      const id = `dim-${d.replace(":", "-")}`;
      dims.append(h("label", { class: "check", for: id }, h("input", { type: "checkbox", id, name: "dim", value: d }), dimName(d)));
    }
  };
  indSel.addEventListener("change", fillDims);
  fillDims();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const groupBy = [...dims.querySelectorAll("input:checked")].map((c) => c.value);
    const from = $("#q-from").value;
    const to = $("#q-to").value;
    if (!api.yyyymm(from) || !api.yyyymm(to)) {
      result.replaceChildren(h("p", { class: "error", role: "alert" }, "月份格式应为 YYYY-MM，例如 2024-01。"));
      return;
    }
    const values = $("#q-filter-values").value.split(/[,，\s]+/).filter(Boolean);
    const filters = filterDim.value && values.length ? [{ dimension: filterDim.value, values }] : [];
    const req = { indicator: indSel.value, groupBy, from, to, filters, purpose: $("#q-purpose").value, legalBasis: $("#q-legal").value };
    result.replaceChildren(h("p", { class: "muted" }, "查询中…"));
    try {
      const ans = await api.query(req);
      result.replaceChildren();
      renderAnswer(result, ans, groupBy.map(baseDim), req, indicatorInfo(ans.indicator));
    } catch (e) {
      result.replaceChildren();
      showError(result, e);
    }
  });
}

// ------------------------------------------------------------------ warning board (立案偏离度)

/** The latest whole year the data cover, from an answer's data_until (YYYY-MM-DD). */
function latestFullYear(dataUntil) {
  const m = /^(\d{4})-(\d{2})/.exec(dataUntil || "");
  if (!m) return null;
  return +m[2] === 12 ? +m[1] : +m[1] - 1;
}

// Xiamen's six districts laid out roughly as on a map: 同安 and 翔安 on the mainland to the north
// and east, 集美 and 海沧 west, 湖里 and 思明 on the island.
const TILE_POS = { 350212: [1, 2], 350213: [1, 3], 350211: [2, 1], 350205: [3, 1], 350206: [2, 2], 350203: [3, 2] };

async function viewBoard(root, dim) {
  const a = allowed();
  if (!a.indicators.has("filing_deviation") || !a.dimensions.has(dim)) {
    root.append(h("p", { class: "error refusal", role: "alert" }, `您的授权不允许按${dimName(dim)}查看立案偏离度。`));
    return;
  }
  await catalogue();
  const purpose = [...a.purposes][0];
  const status = h("p", { class: "muted", id: "board-status" }, "查询中…");
  root.append(status);
  const ask = (indicator, groupBy, year) =>
    api.query({ indicator, groupBy, from: `${year}-01`, to: `${year}-12`, filters: [], purpose });
  let year = defaultYear();
  let ans = await ask("filing_deviation", [dim], year);
  const latest = latestFullYear(ans.data_until);
  if (latest && latest !== year) {
    year = latest;
    ans = await ask("filing_deviation", [dim], year);
  }
  // Trend: filings per month of the same year (one query), where the grant allows months.
  let trend = null;
  if (a.indicators.has("filed") && a.dimensions.has("month")) {
    try {
      trend = await ask("filed", [dim, "month"], year);
    } catch {
      trend = null;
    }
  }
  const series = new Map();
  for (const r of trend?.rows || []) {
    const key = r.group[dim];
    if (!series.has(key)) series.set(key, new Map());
    series.get(key).set(r.group.month, r.status === "ok" ? r.value : null);
  }
  const spark = (code) => {
    const s = series.get(code);
    if (!s) return h("span", { class: "muted" }, "无趋势");
    const months = [...s.keys()].sort();
    return sparkline(months.map((m) => s.get(m)), { label: `${year} 年各月新收案件` });
  };
  const cov = ans.coverage || {};
  status.textContent = `${year} 年立案偏离度（与前三年同期均值相比）：绿色 < 15%，黄色 15%–30%，红色 > 30%。审计序号 #${ans.audit_seq}，节点应答 ${cov.answered}/${cov.asked}，数据截至 ${ans.data_until || "—"}。`;
  if ((cov.missing || []).length) root.append(h("p", { class: "partial-note" }, `部分结果：缺少节点 ${missingText(cov)}。`));

  const card = (r) => {
    const code = r.group[dim];
    const name = placeName(dim, code) || code;
    const l = LEVELS[r.level];
    const base = typeof r.denominator === "number" ? (r.denominator / 3).toFixed(1) : "—";
    const val = r.status === "ok" ? fmtValue("deviation", r.value) : r.status === "suppressed" ? `<${ans.threshold}` : r.status === "no_baseline" ? "无基线" : "部分";
    const pos = TILE_POS[code];
    return h(
      "div",
      { class: `tile level-${r.level || "none"}`, "data-code": code, "data-level": r.level || "", "data-row": pos?.[0], "data-col": pos?.[1] },
      h("div", { class: "tile-name" }, name),
      h("div", { class: "tile-code" }, code),
      h("div", { class: "tile-level" }, l ? l.text : "无级别"),
      h("div", { class: "tile-value" }, val),
      h("div", { class: "tile-counts" }, `本期 ${r.numerator ?? "—"} · 基线 ${base}`),
      spark(code),
    );
  };
  const placed = ans.rows.filter((r) => TILE_POS[r.group[dim]] && dim === "region");
  const rest = ans.rows.filter((r) => !(TILE_POS[r.group[dim]] && dim === "region"));
  if (placed.length) root.append(h("div", { class: "tiles map", id: "tiles-map" }, placed.map(card)));
  if (rest.length) root.append(h("div", { class: "tiles", id: "tiles" }, rest.map(card)));
  const tbody = h("tbody");
  for (const r of ans.rows) {
    const code = r.group[dim];
    tbody.append(
      h(
        "tr",
        { "data-code": code, "data-level": r.level || "", "data-status": r.status },
        h("td", {}, code, " ", h("span", { class: "place" }, placeName(dim, code))),
        levelCell(r.level),
        h("td", { class: "num", "data-value": r.value ?? "" }, r.status === "ok" ? fmtValue("deviation", r.value) : r.status),
        h("td", { class: "num" }, r.numerator ?? "—"),
        h("td", { class: "num" }, typeof r.denominator === "number" ? (r.denominator / 3).toFixed(1) : "—"),
        h("td", {}, spark(code)),
      ),
    );
  }
  root.append(
    h(
      "table",
      { class: "data", id: "board-table", "data-year": year },
      h("thead", {}, h("tr", {}, [dimName(dim), "级别", "偏离度", "本期新收", "基线（三年均值）", "趋势"].map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    ),
  );
}

// ------------------------------------------------------------------ auditor: ledger browser

function keySection(root) {
  const input = h("input", { id: "ledger-key", size: 60, spellcheck: "false", value: sessionStorage.getItem(KEY_STORE) || "", placeholder: "名称+密钥编号+公钥（checkpoint-key.pub 的内容）" });
  const save = h("button", { type: "button", id: "ledger-key-save" }, "保存");
  save.addEventListener("click", () => sessionStorage.setItem(KEY_STORE, input.value.trim()));
  root.append(h("p", { class: "keyline" }, h("label", { for: "ledger-key" }, "检查点公钥（向账本运营方线下获取）"), input, save));
}

function entrySummary(e) {
  let b = {};
  try {
    b = e.body ? JSON.parse(e.body) : {};
  } catch {
    b = {};
  }
  const pick = (...ks) => {
    for (const k of ks) if (b[k] !== undefined && b[k] !== "") return typeof b[k] === "object" ? JSON.stringify(b[k]) : String(b[k]);
    return "";
  };
  const who = b.principal && typeof b.principal === "object" ? b.principal : {};
  return {
    agency: who.agency || pick("agency"),
    principal: who.sub || pick("principal"),
    indicator: pick("indicator"),
    decision: pick("decision"),
    action: pick("action"),
  };
}

async function viewAudit(root, arg) {
  if (arg) return viewEntry(root, Number(arg));
  keySection(root);
  const f = (id, label, attrs = {}) => [h("label", { for: id }, label), h("input", { id, ...attrs })];
  const form = h(
    "form",
    { id: "audit-filters", class: "builder" },
    f("a-agency", "机构"),
    f("a-principal", "用户"),
    f("a-indicator", "指标"),
    h("label", { for: "a-decision" }, "决定"),
    h("select", { id: "a-decision" }, ["", "allow", "deny"].map((d) => h("option", { value: d }, d ? d : "（全部）"))),
    f("a-from", "起始时间", { type: "datetime-local" }),
    f("a-to", "截止时间", { type: "datetime-local" }),
    h("button", { type: "submit" }, "筛选"),
  );
  const info = h("p", { id: "audit-info", class: "muted" });
  const table = h("div", { id: "audit-table" });
  const prev = h("button", { type: "button", id: "a-prev" }, "上一页");
  const next = h("button", { type: "button", id: "a-next" }, "下一页");
  const last = h("button", { type: "button", id: "a-latest" }, "最新");
  root.append(form, info, table, h("p", { class: "pager" }, prev, next, last));
  const LIMIT = 50;
  // Each page is fetched by the cursor the previous page gave (`next_cursor`); the stack allows going back.
  let cursors = [null];
  const params = () => {
    const p = new URLSearchParams();
    const put = (k, v) => v && p.set(k, v);
    put("agency", $("#a-agency").value.trim());
    put("principal", $("#a-principal").value.trim());
    put("indicator", $("#a-indicator").value.trim());
    put("decision", $("#a-decision").value);
    const iso = (v) => (v ? new Date(v).toISOString() : "");
    put("from", iso($("#a-from").value));
    put("to", iso($("#a-to").value));
    p.set("limit", String(LIMIT));
    return p;
  };
  const load = async () => {
    const p = params();
    const c = cursors[cursors.length - 1];
    if (c) p.set("cursor", c);
    table.replaceChildren(h("p", { class: "muted" }, "加载中…"));
    let page;
    try {
      page = await api.api("GET", `/v1/audit/entries?${p}`);
    } catch (e) {
      table.replaceChildren();
      return showError(table, e);
    }
    const entries = page.entries || [];
    const tbody = h("tbody");
    for (const e of entries) {
      const s = entrySummary(e);
      tbody.append(
        h(
          "tr",
          { "data-seq": e.seq },
          h("td", { class: "num" }, h("a", { href: `#/audit/${e.seq}` }, `#${e.seq}`)),
          h("td", {}, new Date(Number(e.time_ms)).toLocaleString("zh-CN", { hour12: false })),
          h("td", {}, s.agency),
          h("td", {}, s.principal),
          h("td", {}, s.action),
          h("td", {}, s.indicator),
          h("td", {}, s.decision),
          h("td", {}, e.purged ? "已清除明文" : ""),
        ),
      );
    }
    table.replaceChildren(
      h("table", { class: "data" }, h("thead", {}, h("tr", {}, ["序号", "时间", "机构", "用户", "操作", "指标", "决定", ""].map((t) => h("th", { scope: "col" }, t)))), tbody),
    );
    const first = entries[0]?.seq;
    const lastSeq = entries[entries.length - 1]?.seq;
    info.textContent = `账本共 ${page.total ?? "?"} 条；本页 ${entries.length} 条${first ? `（#${first}–#${lastSeq}）` : ""}。`;
    next.disabled = !page.next_cursor;
    const filtered = [...params().keys()].some((k) => k !== "limit");
    last.disabled = filtered;
    prev.disabled = cursors.length < 2;
    next.onclick = () => {
      cursors.push(page.next_cursor);
      load();
    };
    last.onclick = () => {
      const total = Number(page.total || 0);
      // Without filters a cursor is `s<seq>`: the newest page starts LIMIT entries before the end.
      cursors = [null, `s${Math.max(1, total - LIMIT + 1)}`];
      load();
    };
  };
  prev.addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    load();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    cursors = [null];
    load();
  });
  await load();
}

async function viewEntry(root, seq) {
  root.append(h("p", {}, h("a", { href: "#/audit" }, "← 返回审计日志")));
  keySection(root);
  const resp = await api.api("GET", `/v1/audit/entries/${seq}`);
  const entry = resp.entry || {};
  root.append(h("h2", {}, `条目 #${entry.seq}`));
  const status = h("div", { id: "verify-status", class: "verify pending", "data-state": "pending", role: "status" }, "正在浏览器中验证…");
  root.append(status);
  const tbody = h("tbody");
  tbody.append(h("tr", {}, h("th", { scope: "row" }, "时间"), h("td", {}, new Date(Number(entry.time_ms)).toLocaleString("zh-CN", { hour12: false }))));
  tbody.append(h("tr", {}, h("th", { scope: "row" }, "条目哈希"), h("td", {}, h("code", {}, entry.hash || ""))));
  for (const fl of resp.fields || []) {
    if (fl.name === "body") continue;
    tbody.append(h("tr", {}, h("th", { scope: "row" }, fl.name), h("td", {}, fl.value)));
  }
  root.append(h("table", { class: "data kv", id: "entry-fields" }, tbody));
  if (entry.body) {
    let pretty = entry.body;
    try {
      pretty = JSON.stringify(JSON.parse(entry.body), null, 2);
    } catch {
      /* shown as stored */
    }
    root.append(h("details", {}, h("summary", {}, "规范化正文（canonical JSON）"), h("pre", { id: "entry-body" }, pretty)));
  }
  try {
    const keyText = sessionStorage.getItem(KEY_STORE);
    if (!keyText) throw new Error("没有检查点公钥：请在上方填入账本运营方公布的公钥后刷新。");
    const vkey = await parseVerifierKey(keyText);
    const cp = await verifyEntry(resp, vkey);
    status.className = "verify ok";
    status.dataset.state = "ok";
    status.textContent = `✔ 已验证：条目 #${entry.seq} 包含于检查点 ${cp.size}（verified against checkpoint ${cp.size}），签名密钥 ${vkey.name}，根哈希与签名均已在浏览器中核对。`;
  } catch (e) {
    status.className = "verify fail";
    status.dataset.state = "fail";
    status.textContent = `✘ 验证失败：${e.message}`;
  }
}

// ------------------------------------------------------------------ auditor: access report

/** Renders any JSON value as nested tables (text only). */
function jsonView(v) {
  if (v === null || typeof v !== "object") return document.createTextNode(v === null ? "—" : String(v));
  if (Array.isArray(v)) {
    if (!v.length) return h("span", { class: "muted" }, "（无）");
    if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
      const keys = [...new Set(v.flatMap((x) => Object.keys(x)))];
      return h(
        "table",
        { class: "data" },
        h("thead", {}, h("tr", {}, keys.map((k) => h("th", { scope: "col" }, k)))),
        h("tbody", {}, v.map((x) => h("tr", {}, keys.map((k) => h("td", {}, jsonView(x[k])))))),
      );
    }
    return h("ul", {}, v.map((x) => h("li", {}, jsonView(x))));
  }
  return h("table", { class: "data kv" }, h("tbody", {}, Object.entries(v).map(([k, x]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, jsonView(x))))));
}

async function viewReport(root) {
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 30 * 86400_000).toISOString().slice(0, 10);
  const form = h(
    "form",
    { id: "report-form", class: "builder" },
    h("label", { for: "r-from" }, "起始日期"),
    h("input", { id: "r-from", type: "date", value: monthAgo }),
    h("label", { for: "r-to" }, "截止日期"),
    h("input", { id: "r-to", type: "date", value: today }),
    h("button", { type: "submit" }, "生成报告"),
  );
  const out = h("div", { id: "report" });
  root.append(form, out);
  const load = async () => {
    const p = new URLSearchParams({ from: $("#r-from").value, to: $("#r-to").value });
    out.replaceChildren(h("p", { class: "muted" }, "生成中…"));
    try {
      const rep = await api.api("GET", `/v1/audit/report?${p}`);
      out.replaceChildren();
      for (const [k, v] of Object.entries(rep || {})) out.append(h("h2", {}, k), jsonView(v));
    } catch (e) {
      out.replaceChildren();
      showError(out, e);
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  await load();
}

boot();

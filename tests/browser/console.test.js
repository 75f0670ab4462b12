// Browser tests of the web console: Debian's Chromium driven by playwright-core against a running
// `shuzhu demo` (started by run.sh, which sets SHUZHU_DEMO to its folder and DEMO_PID to its process).
// Numbers on the page are compared with the JSON API's own answers to the same request; nothing is
// mocked except where a test alters a response on purpose (the tampered proof).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const DEMO = process.env.SHUZHU_DEMO;
const SHOTS = process.env.SCREENSHOTS || path.resolve("../../target/screenshots");
const STOP_NODE = process.env.STOP_NODE;
const demo = JSON.parse(fs.readFileSync(path.join(DEMO, "demo.json"), "utf8"));
const BASE = new URL(demo.console).origin;
const tokenOf = (who) => fs.readFileSync(demo.tokens[who], "utf8").trim();
const ledgerKey = fs.readFileSync(path.join(`${demo.ledger}.keys`, "checkpoint-key.pub"), "utf8").trim();
const YEAR = "2024";

let browser;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  // launch() gives every run a fresh temporary profile (user-data dir) of its own.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh context (own sessionStorage) that trusts the demo's self-made certificate. */
async function newPage(opts = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 900 }, ...opts });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return page;
}

/** Logs in through the URL fragment (as the demo's console link does). */
async function loginAs(who, view = "") {
  const page = await newPage();
  const frag = new URLSearchParams({ token: tokenOf(who) });
  if (who === "auditor") frag.set("key", ledgerKey);
  if (view) frag.set("view", view);
  await page.goto(`${BASE}/#${frag}`);
  await page.locator("#nav a").first().waitFor();
  return page;
}

/** POST /v1/query with `who`'s token, outside the page. */
async function apiQuery(page, who, body) {
  const r = await page.context().request.post(`${BASE}/v1/query`, {
    headers: { Authorization: `Bearer ${tokenOf(who)}`, "Content-Type": "application/json" },
    data: body,
  });
  assert.equal(r.status(), 200, await r.text());
  return r.json();
}

function body(indicator, groupBy, purpose = "诉源治理", from = `${YEAR}-01`, to = `${YEAR}-12`) {
  const m = (s) => Number(s.replace("-", ""));
  return { indicator, group_by: groupBy, period: { from_month: m(from), to_month: m(to) }, filters: [], purpose, legal_basis: "" };
}

/** Fills the query builder with the mouse-free Playwright API and submits; waits for the table. */
async function runQuery(page, indicator, dims, { from = `${YEAR}-01`, to = `${YEAR}-12`, purpose = "诉源治理" } = {}) {
  await page.goto(`${BASE}/#/query`);
  await page.locator("#q-indicator").selectOption(indicator);
  for (const d of dims) await page.locator(`#dim-${d.replace(":", "-")}`).check();
  await page.locator("#q-from").fill(from);
  await page.locator("#q-to").fill(to);
  await page.locator("#q-purpose").selectOption(purpose);
  const seqBefore = (await page.locator("#provenance").count()) ? await page.locator("#provenance").getAttribute("data-audit-seq") : null;
  await page.locator("#q-submit").click();
  await page.locator("#result-table, #result .error").first().waitFor();
  assert.notEqual(await page.locator("#provenance").getAttribute("data-audit-seq"), seqBefore);
}

/** The result table as [{cells by dim, value text, value data, status}]. */
async function tableRows(page, dims) {
  return page.locator("#result-table tbody tr").evaluateAll(
    (trs, dims) =>
      trs.map((tr) => {
        const tds = [...tr.querySelectorAll("td")];
        return {
          group: Object.fromEntries(dims.map((d, i) => [d, tds[i].dataset.code])),
          text: tds.map((t) => t.textContent),
          value: tds[dims.length].dataset.value,
          valueText: tds[dims.length].textContent,
          status: tr.dataset.status,
        };
      }),
    dims,
  );
}

const key = (group, dims) => dims.map((d) => group[d]).join("|");

test("login: a pasted token logs in, lives in sessionStorage only and never in a URL", async () => {
  const page = await newPage();
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));
  const t0 = Date.now();
  await page.goto(`${BASE}/`);
  await page.locator("#token-input").waitFor();
  await page.screenshot({ path: path.join(SHOTS, "login.png") });
  await page.locator("#token-input").fill(tokenOf("requester"));
  await page.locator("#login-form button[type=submit]").click();
  await page.locator("#catalogue tbody tr").first().waitFor();
  console.log(`# first view interactive (login → catalogue drawn): ${Date.now() - t0} ms`);
  assert.match(await page.locator("#who").textContent(), /requester/);
  const storage = await page.evaluate(() => ({ s: sessionStorage.getItem("shuzhu.token"), l: localStorage.length }));
  assert.equal(storage.s, tokenOf("requester"));
  assert.equal(storage.l, 0);
  const t = tokenOf("requester");
  assert.ok(urls.every((u) => !u.includes(t) && !u.includes(t.slice(-20))), "a request URL carried the token");
  await page.screenshot({ path: path.join(SHOTS, "catalogue.png"), fullPage: true });
  await page.context().close();
});

test("the demo's console link logs in through the fragment and clears it from the address", async () => {
  const page = await newPage();
  const seen = [];
  page.on("request", (r) => seen.push(r.url()));
  const t0 = Date.now();
  await page.goto(demo.console);
  await page.locator("#catalogue tbody tr").first().waitFor();
  console.log(`# first view interactive (console link → catalogue drawn): ${Date.now() - t0} ms`);
  assert.doesNotMatch(page.url(), /token=/);
  assert.ok(seen.every((u) => !u.includes("token=")));
  const rows = await page.locator("#catalogue tbody tr").count();
  assert.ok(rows >= 10, `catalogue has ${rows} rows`);
  assert.match(await page.locator('#catalogue tr[data-indicator="closure_rate"]').textContent(), /结案率/);
  // The grade column fills from /v1/indicators' `grade` (the sixth cell of each row).
  const grades = await page.locator("#catalogue tbody tr td:nth-child(6)").allTextContents();
  assert.equal(grades.length, rows);
  assert.ok(grades.every((g) => /^L[1-4]$/.test(g.trim())), `grades: ${grades.join(" ")}`);
  await page.context().close();
});

test("a query's table equals POST /v1/query's JSON, with region names beside codes", async () => {
  const page = await loginAs("requester");
  await runQuery(page, "filed", ["region"]);
  const shown = await tableRows(page, ["region"]);
  const json = await apiQuery(page, "requester", body("filed", ["region"]));
  assert.equal(shown.length, json.rows.length);
  assert.ok(shown.length >= 2);
  const byKey = new Map(shown.map((r) => [key(r.group, ["region"]), r]));
  for (const r of json.rows) {
    const s = byKey.get(key(r.group, ["region"]));
    assert.ok(s, `row ${r.group.region} missing on the page`);
    assert.equal(s.status, r.status);
    if (r.status === "ok") assert.equal(s.valueText, String(r.value));
  }
  assert.ok(shown.some((r) => r.text[0].includes("思明区")), "思明区 is shown beside 350203");
  await page.screenshot({ path: path.join(SHOTS, "query.png"), fullPage: true });
  // A ratio: numerator and denominator as the API gives them.
  await runQuery(page, "closure_rate", ["region"]);
  const ratio = await apiQuery(page, "requester", body("closure_rate", ["region"]));
  const rows = await page.locator("#result-table tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((t) => t.dataset.code ?? t.dataset.value ?? t.textContent)));
  for (const r of ratio.rows.filter((r) => r.status === "ok")) {
    const s = rows.find((x) => x[0] === r.group.region);
    assert.deepEqual([Number(s[1]), Number(s[2]), Number(s[3])], [r.value, r.numerator, r.denominator]);
  }
  await page.context().close();
});

test("a suppressed cell is shown as <10 with its explanation", async () => {
  const page = await loginAs("requester");
  await runQuery(page, "filed", ["region", "cause"], { from: `${YEAR}-03`, to: `${YEAR}-03` });
  const json = await apiQuery(page, "requester", body("filed", ["region", "cause"], "诉源治理", `${YEAR}-03`, `${YEAR}-03`));
  const suppressed = json.rows.filter((r) => r.status === "suppressed");
  assert.ok(suppressed.length > 0, "the fixture query has suppressed cells");
  const shown = await tableRows(page, ["region", "cause"]);
  const onPage = shown.filter((r) => r.status === "suppressed");
  assert.equal(onPage.length, suppressed.length);
  for (const r of onPage) assert.equal(r.valueText, `<${json.threshold}`);
  assert.match(await page.locator("#suppression-note").textContent(), /少于 10 条/);
  await page.context().close();
});

test("the chart is drawn with the answer's values", async () => {
  const page = await loginAs("requester");
  await runQuery(page, "filed", ["region"]);
  const json = await apiQuery(page, "requester", body("filed", ["region"]));
  const drawn = await page.locator("#chart svg .bar rect").evaluateAll((rs) => rs.map((r) => r.dataset.value));
  assert.deepEqual(
    drawn,
    json.rows.map((r) => (r.status === "ok" ? String(r.value) : "")),
  );
  // Over time: a line chart whose points are the yearly values.
  await runQuery(page, "filed", ["year"], { from: "2021-01", to: `${YEAR}-12` });
  const yearly = await apiQuery(page, "requester", body("filed", ["year"], "诉源治理", "2021-01", `${YEAR}-12`));
  const points = await page.locator("#chart svg.lines circle").evaluateAll((cs) => cs.map((c) => Number(c.dataset.value)));
  const want = yearly.rows.filter((r) => r.status === "ok").sort((a, b) => a.group.year.localeCompare(b.group.year)).map((r) => r.value);
  assert.deepEqual(points, want);
  await page.screenshot({ path: path.join(SHOTS, "chart.png"), fullPage: true });
  await page.context().close();
});

test("the CSV download has a BOM, a header and the answer's values", async () => {
  const page = await loginAs("requester");
  await runQuery(page, "filed", ["region"]);
  const json = await apiQuery(page, "requester", body("filed", ["region"]));
  const [dl] = await Promise.all([page.waitForEvent("download"), page.locator("#csv").click()]);
  const bytes = fs.readFileSync(await dl.path());
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  const lines = bytes.subarray(3).toString("utf8").split("\r\n");
  assert.equal(lines[0], "region,region_name,value,status,numerator,denominator");
  assert.equal(lines.at(-1), "");
  const rows = lines.slice(1, -1).map((l) => l.split(","));
  assert.equal(rows.length, json.rows.length);
  for (const r of json.rows) {
    const c = rows.find((x) => x[0] === r.group.region);
    assert.equal(c[2], r.status === "suppressed" ? `<${json.threshold}` : String(r.value ?? ""));
    assert.equal(c[3], r.status);
  }
  assert.ok(rows.some((c) => c[1] === "思明区"));
  await page.context().close();
});

test("the warning board's colours and level texts equal the API's levels", async () => {
  const page = await loginAs("requester");
  await page.goto(`${BASE}/#/board`);
  await page.locator("#board-table tbody tr").first().waitFor();
  const year = await page.locator("#board-table").getAttribute("data-year");
  const json = await apiQuery(page, "requester", body("filing_deviation", ["region"], "诉源治理", `${year}-01`, `${year}-12`));
  const texts = { green: "绿色 · 正常", yellow: "黄色 · 关注", red: "红色 · 预警" };
  const shown = await page.locator("#board-table tbody tr").evaluateAll((trs) =>
    trs.map((tr) => ({ code: tr.dataset.code, level: tr.dataset.level, text: tr.querySelector("td.level").textContent, cls: tr.querySelector("td.level").className })),
  );
  assert.equal(shown.length, json.rows.length);
  for (const r of json.rows) {
    const s = shown.find((x) => x.code === r.group.region);
    assert.equal(s.level, r.level);
    if (r.level) {
      assert.equal(s.text, texts[r.level]);
      assert.ok(s.cls.includes(`level-${r.level}`));
      const tile = page.locator(`.tile[data-code="${r.group.region}"]`);
      assert.ok((await tile.getAttribute("class")).includes(`level-${r.level}`));
      assert.match(await tile.textContent(), new RegExp(texts[r.level]));
    }
  }
  await page.screenshot({ path: path.join(SHOTS, "board.png"), fullPage: true });
  await page.context().close();
});

test("a court manager sees the board by court", async () => {
  const page = await loginAs("manager");
  await page.goto(`${BASE}/#/court`);
  await page.locator("#board-table tbody tr").first().waitFor();
  const codes = await page.locator("#board-table tbody tr").evaluateAll((trs) => trs.map((t) => t.dataset.code));
  assert.ok(codes.every((c) => c.startsWith("闽")), codes.join(","));
  assert.match(await page.locator("#board-table tbody").textContent(), /人民法院/);
  await page.screenshot({ path: path.join(SHOTS, "court.png"), fullPage: true });
  await page.context().close();
});

async function openEntry(page) {
  await page.goto(`${BASE}/#/audit`);
  await page.locator("#audit-table tbody tr").first().waitFor();
  await page.screenshot({ path: path.join(SHOTS, "audit.png"), fullPage: true });
  const seq = await page.locator("#audit-table tbody tr").nth(1).getAttribute("data-seq");
  await page.goto(`${BASE}/#/audit/${seq}`);
  await page.locator('#verify-status:not([data-state="pending"])').waitFor();
  return seq;
}

test("an auditor verifies an entry's proof in the page; a tampered proof or note fails", async () => {
  const page = await loginAs("auditor", "audit");
  const seq = await openEntry(page);
  const ok = page.locator("#verify-status");
  assert.equal(await ok.getAttribute("data-state"), "ok", await ok.textContent());
  assert.match(await ok.textContent(), /verified against checkpoint \d+/);
  await page.screenshot({ path: path.join(SHOTS, "entry.png"), fullPage: true });

  // Flip one bit of the proof's first hash (or of the leaf when the tree is one leaf).
  const tamper = async (alter) => {
    await page.route(`**/v1/audit/entries/${seq}`, async (route) => {
      const resp = await route.fetch();
      const j = await resp.json();
      alter(j);
      await route.fulfill({ response: resp, json: j });
    });
    await page.goto(`${BASE}/#/audit`);
    await page.goto(`${BASE}/#/audit/${seq}`);
    await page.locator('#verify-status:not([data-state="pending"])').waitFor();
    await page.unrouteAll();
    return page.locator("#verify-status");
  };
  const flip = (s) => {
    const hexy = /^[0-9a-f]+$/.test(s);
    if (hexy) return (s[0] === "0" ? "1" : "0") + s.slice(1);
    const b = Buffer.from(s, "base64");
    b[0] ^= 1;
    return b.toString("base64");
  };
  let bad = await tamper((j) => {
    if (j.inclusion_proof?.length) j.inclusion_proof[0] = flip(j.inclusion_proof[0]);
    else j.leaf = flip(j.leaf);
  });
  assert.equal(await bad.getAttribute("data-state"), "fail");
  assert.match(await bad.textContent(), /验证失败/);
  await page.screenshot({ path: path.join(SHOTS, "entry-tampered.png"), fullPage: true });
  // A checkpoint whose size line was changed: the signature no longer checks.
  bad = await tamper((j) => {
    j.checkpoint = j.checkpoint.replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`);
  });
  assert.equal(await bad.getAttribute("data-state"), "fail");
  assert.match(await bad.textContent(), /签名/);
  await page.context().close();
});

test("the access report renders for an auditor", async () => {
  const page = await loginAs("auditor", "report");
  await page.goto(`${BASE}/#/report`);
  await page.locator("#report h2, #report .error").first().waitFor();
  assert.equal(await page.locator("#report .error").count(), 0, await page.locator("#report").textContent());
  await page.screenshot({ path: path.join(SHOTS, "report.png"), fullPage: true });
  await page.context().close();
});

test("a requester opening the auditor view gets the refusal", async () => {
  const page = await loginAs("requester");
  assert.equal(await page.locator("#nav-audit").count(), 0);
  await page.goto(`${BASE}/#/audit`);
  const refusal = page.locator(".refusal");
  await refusal.waitFor();
  assert.equal(await refusal.getAttribute("data-status"), "403");
  assert.match(await refusal.textContent(), /拒绝访问/);
  await page.screenshot({ path: path.join(SHOTS, "refusal.png") });
  await page.context().close();
});

test("a <script> label stays inert text", async () => {
  const page = await loginAs("requester");
  const violations = [];
  page.on("console", (m) => violations.push(m.text()));
  await runQuery(page, "filed", ["cause"]);
  const cells = await page.locator('#result-table td[data-dim="cause"]').allTextContents();
  const hostile = cells.find((c) => c.includes("<script>"));
  assert.ok(hostile, `no <script> label among ${cells.length} causes`);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.locator("#result script, #chart script").count(), 0);
  // The label is also in the chart as text, not markup.
  assert.ok((await page.locator("#chart svg").textContent()).includes("<script>"));
  await page.context().close();
});

test("keyboard only: the query builder can be filled and submitted without a mouse", async () => {
  const page = await loginAs("requester");
  await page.goto(`${BASE}/#/query`);
  await page.locator("#q-indicator").waitFor();
  await page.locator("#main").focus();
  const focused = () => page.evaluate(() => document.activeElement?.id);
  let guard = 0;
  while ((await focused()) !== "q-indicator" && guard++ < 30) await page.keyboard.press("Tab");
  assert.equal(await focused(), "q-indicator");
  // Choose `filed` by typing into the select.
  const options = await page.locator("#q-indicator option").evaluateAll((os) => os.map((o) => o.value));
  const target = options.indexOf("filed");
  const current = options.indexOf(await page.locator("#q-indicator").inputValue());
  for (let i = current; i < target; i++) await page.keyboard.press("ArrowDown");
  for (let i = current; i > target; i--) await page.keyboard.press("ArrowUp");
  assert.equal(await page.locator("#q-indicator").inputValue(), "filed");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "dim-region");
  await page.keyboard.press("Space");
  while ((await focused()) !== "q-from" && guard++ < 60) await page.keyboard.press("Tab");
  await page.keyboard.press("Control+A");
  await page.keyboard.type(`${YEAR}-01`);
  await page.keyboard.press("Tab");
  await page.keyboard.press("Control+A");
  await page.keyboard.type(`${YEAR}-06`);
  await page.keyboard.press("Enter");
  await page.locator("#result-table").waitFor();
  const json = await apiQuery(page, "requester", body("filed", ["region"], "诉源治理", `${YEAR}-01`, `${YEAR}-06`));
  assert.equal(await page.locator("#result-table tbody tr").count(), json.rows.length);
  await page.context().close();
});

test("asset size: every console file, gzip-compressed, under 1.5 MB", async () => {
  const page = await newPage();
  let total = 0;
  let raw = 0;
  for (const f of ["/", "/app.js", "/answer.js", "/api.js", "/chart.js", "/regions.js", "/verify.js", "/style.css"]) {
    const r = await page.context().request.get(`${BASE}${f}`);
    assert.equal(r.status(), 200);
    const h = r.headers();
    assert.match(h["content-security-policy"], /frame-ancestors 'none'/);
    assert.equal(h["x-content-type-options"], "nosniff");
    const b = await r.body();
    raw += b.length;
    total += zlib.gzipSync(b, { level: 9 }).length;
  }
  console.log(`# console assets: ${raw} bytes, ${total} bytes gzip -9`);
  assert.ok(total < 1.5 * 1024 * 1024);
  await page.context().close();
});

// Last: it stops a node for good.
test("a partial answer names the stopped node", { skip: !STOP_NODE || !process.env.DEMO_PID }, async () => {
  process.kill(Number(process.env.DEMO_PID), "SIGUSR1");
  const page = await loginAs("requester");
  let json;
  for (let i = 0; i < 50; i++) {
    json = await apiQuery(page, "requester", body("filed", ["region"]));
    if (json.coverage.missing.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(json.coverage.missing.some((m) => m.node === STOP_NODE));
  await runQuery(page, "filed", ["region"]);
  const note = await page.locator("#missing-nodes").textContent();
  assert.ok(note.includes(STOP_NODE), note);
  const shown = await tableRows(page, ["region"]);
  assert.deepEqual(
    shown.map((r) => r.status).sort(),
    json.rows.map((r) => r.status).sort(),
  );
  await page.screenshot({ path: path.join(SHOTS, "partial.png"), fullPage: true });
  await page.context().close();
});

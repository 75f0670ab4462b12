// The console's answer rendering (gateway/web/answer.js) in Chromium on real answers of the running
// demo federation: `shuzhu query --format json` prints the same JSON as POST /v1/query, through the
// real gateway, nodes, disclosure control and ledger. The page renders each answer as the query view
// does; the test compares what is shown (table, chart, CSV bytes, level texts) with the JSON.
// Last, it stops a node (SIGUSR1 to the demo) and checks a partial answer names it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { consolePage, launch } from "./pages.js";

const DEMO = process.env.SHUZHU_DEMO;
const BIN = process.env.SHUZHU_BIN;
const SHOTS = process.env.SCREENSHOTS || path.resolve(import.meta.dirname, "../../target/screenshots");
const YEAR = "2024";

let browser;
let page;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await launch();
  page = await consolePage(browser);
});

after(async () => {
  await browser?.close();
});

/** A real answer through the CLI's gRPC client (same JSON as POST /v1/query). */
function ask(indicator, groupBy, from = `${YEAR}-01`, to = `${YEAR}-12`, purpose = "诉源治理") {
  const out = execFileSync(
    BIN,
    ["query", "--demo", DEMO, "--indicator", indicator, "--group-by", groupBy.join(","), "--from", from, "--to", to, "--purpose", purpose, "--format", "json"],
    { encoding: "utf8" },
  );
  return JSON.parse(out);
}

const INFO = {
  filed: { name: "新收案件数", kind: "count" },
  closure_rate: { name: "结案率", kind: "ratio" },
  filing_deviation: { name: "立案偏离度", kind: "deviation" },
};

/** Renders `ans` into #view as the query view does; returns the rows as shown. */
async function render(ans, groupBy) {
  return page.evaluate(
    async ([ans, groupBy, info]) => {
      const m = await import("/answer.js");
      const root = document.querySelector("#view");
      root.replaceChildren();
      document.querySelector("#login").hidden = true;
      m.renderAnswer(root, ans, groupBy, { from: "x", to: "y" }, info);
      return [...root.querySelectorAll("#result-table tbody tr")].map((tr) => {
        const tds = [...tr.querySelectorAll("td")];
        return {
          group: Object.fromEntries(groupBy.map((d, i) => [d, tds[i].dataset.code])),
          texts: tds.map((t) => t.textContent),
          value: tds[groupBy.length].dataset.value,
          valueText: tds[groupBy.length].textContent,
          status: tr.dataset.status,
          level: tr.querySelector("td.level")?.dataset.level,
          levelText: tr.querySelector("td.level")?.textContent,
        };
      });
    },
    [ans, groupBy, INFO[ans.indicator]],
  );
}

const key = (g, dims) => dims.map((d) => g[d]).join("|");

test("the table shows the answer's numbers, statuses and region names", async () => {
  const ans = ask("filed", ["region"]);
  const shown = await render(ans, ["region"]);
  assert.equal(shown.length, ans.rows.length);
  assert.ok(ans.rows.length >= 2);
  for (const [i, r] of ans.rows.entries()) {
    assert.equal(shown[i].group.region, r.group.region);
    assert.equal(shown[i].status, r.status);
    if (r.status === "ok") assert.equal(shown[i].valueText, String(r.value));
  }
  assert.ok(shown.some((r) => r.texts[0] === "350203 思明区"), shown.map((r) => r.texts[0]).join(","));
  await page.screenshot({ path: path.join(SHOTS, "answer-table.png"), fullPage: true });

  const ratio = ask("closure_rate", ["region"]);
  const rs = await render(ratio, ["region"]);
  for (const [i, r] of ratio.rows.entries()) {
    if (r.status !== "ok") continue;
    assert.equal(Number(rs[i].value), r.value);
    assert.equal(rs[i].valueText, `${(r.value * 100).toFixed(2)}%`);
    assert.deepEqual([Number(rs[i].texts[2]), Number(rs[i].texts[3])], [r.numerator, r.denominator]);
  }
});

test("suppressed cells are shown as <k with the explanation", async () => {
  const dims = ["region", "cause"];
  const ans = ask("filed", dims, `${YEAR}-03`, `${YEAR}-03`);
  const suppressed = ans.rows.filter((r) => r.status === "suppressed");
  assert.ok(suppressed.length > 0, "the fixture answer has suppressed cells");
  const shown = await render(ans, dims);
  const byKey = new Map(shown.map((r) => [key(r.group, dims), r]));
  for (const r of suppressed) {
    const s = byKey.get(key(r.group, dims));
    assert.equal(s.status, "suppressed");
    assert.equal(s.valueText, `<${ans.threshold}`);
    assert.equal(s.value, "");
  }
  assert.match(await page.locator("#suppression-note").textContent(), new RegExp(`少于 ${ans.threshold} 条`));
  await page.screenshot({ path: path.join(SHOTS, "answer-suppressed.png"), fullPage: true });
});

test("the chart is drawn with the answer's values: bars by category, lines over time", async () => {
  const ans = ask("filed", ["region"]);
  await render(ans, ["region"]);
  const drawn = await page.locator("#chart svg .bar rect").evaluateAll((rs) => rs.map((r) => r.dataset.value));
  assert.deepEqual(drawn, ans.rows.map((r) => (r.status === "ok" ? String(r.value) : "")));
  const yearly = ask("filed", ["year"], "2021-01", `${YEAR}-12`);
  await render(yearly, ["year"]);
  const points = await page.locator("#chart svg.lines circle").evaluateAll((cs) => cs.map((c) => Number(c.dataset.value)));
  const want = yearly.rows.filter((r) => r.status === "ok").sort((a, b) => a.group.year.localeCompare(b.group.year)).map((r) => r.value);
  assert.ok(want.length >= 3);
  assert.deepEqual(points, want);
  await page.screenshot({ path: path.join(SHOTS, "answer-chart.png"), fullPage: true });
});

test("the CSV download has a BOM, a header and the answer's values", async () => {
  const ans = ask("filed", ["region"]);
  await render(ans, ["region"]);
  const [dl] = await Promise.all([page.waitForEvent("download"), page.locator("#csv").click()]);
  const bytes = fs.readFileSync(await dl.path());
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  const lines = bytes.subarray(3).toString("utf8").split("\r\n");
  assert.equal(lines[0], "region,region_name,value,status,numerator,denominator");
  assert.equal(lines.at(-1), "");
  const rows = lines.slice(1, -1).map((l) => l.split(","));
  assert.equal(rows.length, ans.rows.length);
  for (const [i, r] of ans.rows.entries()) {
    assert.equal(rows[i][0], r.group.region);
    assert.equal(rows[i][2], r.status === "suppressed" ? `<${ans.threshold}` : String(r.value ?? ""));
    assert.equal(rows[i][3], r.status);
  }
  assert.ok(rows.some((c) => c[0] === "350203" && c[1] === "思明区"));
});

test("warning levels are written out and coloured as the answer's levels", async () => {
  const ans = ask("filing_deviation", ["region"]);
  const shown = await render(ans, ["region"]);
  const texts = { green: "绿色 · 正常", yellow: "黄色 · 关注", red: "红色 · 预警" };
  assert.ok(ans.rows.some((r) => r.level), "the fixture answer has levels");
  for (const [i, r] of ans.rows.entries()) {
    assert.equal(shown[i].level, r.level || "");
    if (r.level) assert.equal(shown[i].levelText, texts[r.level]);
  }
  const cls = await page.locator("#result-table td.level").evaluateAll((tds) => tds.map((t) => [t.dataset.level, t.className]));
  for (const [level, c] of cls) assert.ok(c.includes(`level-${level || "none"}`), c);
  await page.screenshot({ path: path.join(SHOTS, "answer-levels.png"), fullPage: true });
});

test("a <script> label from the data stays inert text", async () => {
  const ans = ask("filed", ["cause"]);
  const hostile = ans.rows.find((r) => r.group.cause.includes("<script>"));
  assert.ok(hostile, "the fixture data has a <script> cause");
  const shown = await render(ans, ["cause"]);
  assert.ok(shown.some((r) => r.texts[0] === hostile.group.cause));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.locator("#view script").count(), 0);
  assert.ok((await page.locator("#chart svg").textContent()).includes("<script>"));
});

// Last: it stops a node for good.
test("a partial answer names the stopped node and marks its rows", { skip: !process.env.DEMO_PID || !process.env.STOP_NODE }, async () => {
  const node = process.env.STOP_NODE;
  process.kill(Number(process.env.DEMO_PID), "SIGUSR1");
  let ans;
  for (let i = 0; i < 50; i++) {
    ans = ask("filed", ["region"]);
    if (ans.coverage.missing.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(ans.coverage.missing.some((m) => m.node === node), JSON.stringify(ans.coverage));
  const shown = await render(ans, ["region"]);
  const note = await page.locator("#missing-nodes").textContent();
  assert.ok(note.includes(node), note);
  assert.deepEqual(shown.map((r) => r.status), ans.rows.map((r) => r.status));
  for (const [i, r] of ans.rows.entries()) if (r.status === "partial") assert.match(shown[i].texts.join(" "), new RegExp(node));
  await page.screenshot({ path: path.join(SHOTS, "answer-partial.png"), fullPage: true });
});

// Test fixture: appends 12 cases whose cause (案由) is a `<script>` label to one court's generated
// cases.csv, copies of existing 2024 cases under new case numbers, so that a real query returns
// the label through the whole pipeline. Usage: node hostile.mjs DATA_DIR/COURT_NODE
import fs from "node:fs";
import path from "node:path";

export const LABEL = "<script>window.__pwned=1</script>";

/** Minimal RFC 4180 parser: rows of fields. */
function parse(text) {
  const rows = [];
  let row = [];
  let f = "";
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') {
        f += '"';
        i++;
      } else if (c === '"') q = false;
      else f += c;
    } else if (c === '"') q = true;
    else if (c === ",") {
      row.push(f);
      f = "";
    } else if (c === "\n") {
      row.push(f.replace(/\r$/, ""));
      rows.push(row);
      row = [];
      f = "";
    } else f += c;
  }
  if (f || row.length) rows.push([...row, f]);
  return rows;
}

const cell = (s) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

const file = path.join(process.argv[2], "cases.csv");
const rows = parse(fs.readFileSync(file, "utf8"));
const head = rows[0];
const col = (n) => {
  const i = head.indexOf(n);
  if (i < 0) throw new Error(`cases.csv has no ${n} column`);
  return i;
};
const [caseNo, cause, filed] = [col("case_no"), col("cause"), col("filed_on")];
const donors = rows.slice(1).filter((r) => r[filed]?.startsWith("2024-") && /民初\d+号$/.test(r[caseNo])).slice(0, 12);
if (donors.length < 12) throw new Error("not enough 2024 civil cases to copy");
const out = donors.map((r, i) => {
  const c = [...r];
  c[caseNo] = r[caseNo].replace(/民初\d+号$/, `民初${990001 + i}号`);
  c[cause] = LABEL;
  return c.map(cell).join(",");
});
const text = fs.readFileSync(file, "utf8");
fs.writeFileSync(file, `${text.endsWith("\n") ? text : `${text}\n`}${out.join("\n")}\n`);
console.log(`added ${out.length} cases with a <script> cause to ${file}`);

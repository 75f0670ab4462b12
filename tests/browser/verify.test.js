// The console's in-browser verification (gateway/web/verify.js) run in Chromium on a real entry of
// the running demo's ledger: the leaf, salts and fields from `shuzhu audit export`, the inclusion
// proof from `shuzhu audit prove`, the signed checkpoint of that size from the export, the verifier
// key beside the ledger. All produced by the Rust ledger; the page only checks them. Then single
// alterations (proof, note, field, key) must each be refused with the right message.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { consolePage, launch } from "./pages.js";

const DEMO = process.env.SHUZHU_DEMO;
const BIN = process.env.SHUZHU_BIN;
const KEY = fs.readFileSync(path.join(DEMO, "ledger.keys", "checkpoint-key.pub"), "utf8").trim();

let browser;
let page;
let served;

/** An entry as GET /v1/audit/entries/{seq} serves it, assembled from the CLI's outputs. */
function entryFixture(seq) {
  const run = (...args) => execFileSync(BIN, args, { encoding: "utf8" });
  // Prove first: it may sign a new checkpoint, which the export made afterwards then holds.
  const proved = run("audit", "prove", "--demo", DEMO, "--seq", String(seq), "--key", path.join(DEMO, "ledger.keys", "checkpoint-key.pub"));
  const size = Number(/tree of size (\d+)/.exec(proved)[1]);
  const proof = proved.split("\n").map((l) => l.trim()).filter((l) => /^[0-9a-f]{64}$/.test(l));
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "shuzhu-export-")), "export.jsonl");
  run("audit", "export", "--demo", DEMO, "--out", out);
  const lines = fs.readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  const e = lines.find((l) => l.type === "entry" && l.seq === seq); // the export numbers entries from 1, like every command
  const note = lines.find((l) => l.type === "checkpoint" && l.note.split("\n")[1] === String(size)).note;
  const leaf = Buffer.from(e.leaf, "base64");
  const hash = crypto.createHash("sha256").update(Buffer.concat([Buffer.of(0), leaf])).digest("hex");
  const body = e.fields.find((f) => f.name === "body").value;
  return {
    entry: { seq, body, hash, time_ms: 0, purged: false },
    leaf: e.leaf,
    fields: e.fields.map((f) => ({ name: f.name, salt_hex: f.salt, value: f.value })),
    tree_size: size,
    inclusion_proof: proof,
    checkpoint: note,
  };
}

before(async () => {
  browser = await launch();
  served = [];
  page = await consolePage(browser, served);
});

after(async () => {
  await browser?.close();
});

/** Runs verifyEntry in the page: "ok N" or "fail: message". */
function verifyInPage(resp, key = KEY) {
  return page.evaluate(
    async ([resp, key]) => {
      const v = await import("/verify.js");
      try {
        const cp = await v.verifyEntry(resp, await v.parseVerifierKey(key));
        return `ok ${cp.size}`;
      } catch (e) {
        return `fail: ${e.message}`;
      }
    },
    [resp, key],
  );
}

const flipHex = (s) => (s[0] === "0" ? "1" : "0") + s.slice(1);

test("real ledger entries verify in Chromium against their signed checkpoints", async () => {
  // Several entries, so that proofs of left, right and last-subtree leaves are all exercised.
  const seqs = [1, 2, 3, 4, 5, 6, 7, 8];
  const size = entryFixture(1).tree_size;
  for (let s = Math.max(9, size - 6); s <= size; s++) seqs.push(s);
  for (const seq of seqs) {
    const resp = entryFixture(seq);
    assert.equal(await verifyInPage(resp), `ok ${resp.tree_size}`, `entry ${seq} of ${resp.tree_size}`);
  }
  assert.ok(served.includes("/verify.js"));
});

test("an altered proof, note, field or key is refused with what failed", async () => {
  const resp = entryFixture(3);
  const alter = (f) => {
    const r = structuredClone(resp);
    f(r);
    return r;
  };
  assert.match(await verifyInPage(alter((r) => (r.inclusion_proof[0] = flipHex(r.inclusion_proof[0])))), /^fail: 包含证明算出的根哈希/);
  assert.match(await verifyInPage(alter((r) => r.inclusion_proof.pop())), /^fail: 包含证明/);
  assert.match(await verifyInPage(alter((r) => (r.checkpoint = r.checkpoint.replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`)))), /^fail: 检查点签名验证失败/);
  assert.match(await verifyInPage(alter((r) => (r.fields[0].value += "x"))), /^fail: 字段 \S+ 与叶子承诺的摘要不符/);
  assert.match(await verifyInPage(alter((r) => (r.entry.body = r.entry.body.replace("allow", "deny")))), /^fail: 显示的正文不是叶子承诺的正文/);
  assert.match(await verifyInPage(alter((r) => (r.entry.seq = 4))), /^fail: 叶子属于第 3 条/);
  // A key with the same name but another public key: its key id no longer matches the signature.
  const other = crypto.generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const name = KEY.split("+")[0];
  const id = crypto.createHash("sha256").update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.of(1), other])).digest().subarray(0, 4);
  const otherKey = `${name}+${id.toString("hex")}+${Buffer.concat([Buffer.of(1), other]).toString("base64")}`;
  assert.match(await verifyInPage(resp, otherKey), /^fail: 检查点签名验证失败/);
  assert.match(await verifyInPage(resp, `${name}+00000000+${Buffer.concat([Buffer.of(1), other]).toString("base64")}`), /^fail: 检查点公钥的密钥编号与公钥不符/);
});

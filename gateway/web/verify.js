// Verification of an audit entry in the browser, trusting nothing the gateway says but the
// checkpoint verifier key the auditor holds:
//   1. the checkpoint is a C2SP signed note whose Ed25519 signature checks under that key;
//   2. the leaf (shuzhu-audit-leaf-v1) is for this entry, and each shown field matches the salted
//      digest the leaf commits to: SHA-256(salt ‖ u16 BE name length ‖ name ‖ value);
//   3. the entry hash is the RFC 9162 leaf hash SHA-256(0x00 ‖ leaf);
//   4. the inclusion proof leads from that leaf hash to the checkpoint's root (RFC 9162 §2.1.3.2),
//      interior nodes hashed as SHA-256(0x01 ‖ left ‖ right).
// Mirrors `verify_entry` in src/cli/audit/mod.rs and ledger/src/checkpoint.rs.

const enc = new TextEncoder();
const LEAF_VERSION = "shuzhu-audit-leaf-v1\n";

/** A failed check, with a message for the auditor. */
export class VerifyError extends Error {}

function fail(msg) {
  throw new VerifyError(msg);
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

export function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function fromHex(s) {
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) fail("不是十六进制数据");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function fromBase64(s) {
  let bin;
  try {
    bin = atob(s);
  } catch {
    fail("不是 base64 数据");
  }
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Bytes as the JSON API gives them: lowercase hex, base64, or an array of numbers. */
export function bytes(x) {
  if (x instanceof Uint8Array) return x;
  if (Array.isArray(x)) return Uint8Array.from(x);
  if (typeof x !== "string") fail("缺少字节数据");
  if (/^(?:[0-9a-f]{2})*$/.test(x)) return fromHex(x);
  return fromBase64(x);
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Parses a verifier key `<name>+<hex key id>+<base64(0x01 ‖ public key)>`. */
export async function parseVerifierKey(text) {
  const t = (text || "").trim();
  const first = t.indexOf("+");
  const second = t.indexOf("+", first + 1);
  if (first <= 0 || second !== first + 9) fail("检查点公钥格式不正确");
  const name = t.slice(0, first);
  const id = fromHex(t.slice(first + 1, second));
  const raw = fromBase64(t.slice(second + 1));
  if (raw.length !== 33 || raw[0] !== 0x01) fail("检查点公钥不是 Ed25519 公钥");
  const pub = raw.slice(1);
  const want = (await sha256(enc.encode(name), enc.encode("\n"), Uint8Array.of(0x01), pub)).slice(0, 4);
  if (!equal(want, id)) fail("检查点公钥的密钥编号与公钥不符");
  let key;
  try {
    key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    fail("此浏览器不支持 Ed25519 验签（WebCrypto）");
  }
  return { name, id, key };
}

/** Verifies a signed note under `vkey` and returns its checkpoint {origin, size, root}. */
export async function verifyNote(note, vkey) {
  if (typeof note !== "string" || !note) fail("没有签名的检查点");
  const cut = note.indexOf("\n\n");
  if (cut < 0) fail("检查点不是签名注记格式");
  const text = note.slice(0, cut + 1);
  const sigLines = note.slice(cut + 2).split("\n").filter((l) => l !== "");
  let ok = false;
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m || m[1] !== vkey.name) continue;
    const blob = fromBase64(m[2]);
    if (blob.length !== 68 || !equal(blob.slice(0, 4), vkey.id)) continue;
    if (await crypto.subtle.verify({ name: "Ed25519" }, vkey.key, blob.slice(4), enc.encode(text))) {
      ok = true;
      break;
    }
  }
  if (!ok) fail("检查点签名验证失败：不是由所信任的密钥签名");
  const lines = text.split("\n");
  const size = lines[1];
  if (lines.length < 4 || !lines[0] || !/^(0|[1-9]\d*)$/.test(size || "")) fail("检查点正文格式不正确");
  const root = fromBase64(lines[2]);
  if (root.length !== 32) fail("检查点根哈希不是 32 字节");
  return { origin: lines[0], size: Number(size), root };
}

/** Decodes a leaf: {seq (0-based), timeMs, fields: [{name, digest}]}. */
export function decodeLeaf(leaf) {
  const v = enc.encode(LEAF_VERSION);
  if (leaf.length < v.length + 20 || !equal(leaf.slice(0, v.length), v)) fail("叶子版本不正确");
  const dv = new DataView(leaf.buffer, leaf.byteOffset, leaf.byteLength);
  let o = v.length;
  const seq = Number(dv.getBigUint64(o));
  const timeMs = Number(dv.getBigUint64(o + 8));
  const count = dv.getUint32(o + 16);
  o += 20;
  const fields = [];
  const dec = new TextDecoder("utf-8", { fatal: true });
  for (let i = 0; i < count; i++) {
    if (o + 2 > leaf.length) fail("叶子被截断");
    const n = dv.getUint16(o);
    o += 2;
    if (o + n + 32 > leaf.length) fail("叶子被截断");
    const name = dec.decode(leaf.slice(o, o + n));
    o += n;
    fields.push({ name, digest: leaf.slice(o, o + 32) });
    o += 32;
  }
  if (o !== leaf.length) fail("叶子末尾有多余数据");
  return { seq, timeMs, fields };
}

/** RFC 9162 §2.1.3.2: does `proof` lead from `leafHash` at `index` to `root` of a tree of `size`? */
export async function verifyInclusion(index, size, leafHash, proof, root) {
  if (index >= size) fail("条目不在检查点覆盖的范围内");
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (p.length !== 32) fail("包含证明中的哈希不是 32 字节");
    if (sn === 0) fail("包含证明过长");
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(0x01), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await sha256(Uint8Array.of(0x01), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) fail("包含证明过短");
  if (!equal(r, root)) fail("包含证明算出的根哈希与检查点的根哈希不符");
}

/**
 * Verifies an entry as served by GET /v1/audit/entries/{seq} against the auditor's key; resolves to
 * the checkpoint it was verified against, or throws VerifyError saying what did not check.
 */
export async function verifyEntry(resp, vkey) {
  const entry = resp.entry || fail("回答中没有条目");
  const treeSize = Number(resp.tree_size);
  const cp = await verifyNote(resp.checkpoint, vkey);
  if (cp.size !== treeSize) fail(`检查点的大小是 ${cp.size}，证明的大小是 ${treeSize}`);
  const seq = Number(entry.seq);
  if (!(seq >= 1)) fail("条目序号不正确");
  const leafBytes = bytes(resp.leaf);
  const leaf = decodeLeaf(leafBytes);
  if (leaf.seq !== seq - 1) fail(`叶子属于第 ${leaf.seq + 1} 条，不是第 ${seq} 条`);
  const leafHash = await sha256(Uint8Array.of(0x00), leafBytes);
  if (hex(leafHash) !== String(entry.hash).toLowerCase()) fail("条目哈希不是其叶子的哈希");
  const fields = resp.fields || [];
  if (fields.length) {
    if (fields.length !== leaf.fields.length) fail("条目字段与叶子不符");
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      const l = leaf.fields[i];
      const salt = bytes(f.salt_hex);
      if (salt.length !== 32) fail("字段盐值不是 32 字节");
      const name = enc.encode(l.name);
      const len = Uint8Array.of(name.length >> 8, name.length & 0xff);
      const d = await sha256(salt, len, name, enc.encode(f.value));
      if (f.name !== l.name || !equal(d, l.digest)) fail(`字段 ${l.name} 与叶子承诺的摘要不符`);
      if (l.name === "body" && f.value !== entry.body) fail("显示的正文不是叶子承诺的正文");
    }
  } else if (entry.body) {
    fail("条目显示了正文，却没有用来核对的盐值");
  }
  const proof = (resp.inclusion_proof || []).map(bytes);
  await verifyInclusion(seq - 1, cp.size, leafHash, proof, cp.root);
  return cp;
}

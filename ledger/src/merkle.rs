//! RFC 9162 Merkle-tree hashing and proofs: leaf and node hashes, the tree head, inclusion and
//! consistency proof *generation* over a [`NodeStore`] and their *verification*.
//!
//! Generation never rehashes leaves: a [`NodeStore`] holds the hash of every complete (perfect)
//! subtree by `(level, index)` — level 0 are the leaf hashes, level `l` index `i` is the root of
//! leaves `[i·2^l, (i+1)·2^l)` — and a proof for a tree of `n` leaves reads O(log n) of them.
//! Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by step.
//!
//! ```
//! use shuzhu_ledger::merkle::{self, MemTree};
//! let mut tree = MemTree::default();
//! for data in [&b"a"[..], b"b", b"c"] {
//!     tree.push(merkle::leaf_hash(data));
//! }
//! let root = merkle::root(&tree, 3).unwrap();
//! let proof = merkle::inclusion_proof(&tree, 1, 3).unwrap();
//! merkle::verify_inclusion(1, 3, &merkle::leaf_hash(b"b"), &proof, &root).unwrap();
//! ```

use std::io;

use ring::digest;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof did not verify or could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The older tree size is zero or larger than the newer one.
    #[error("tree sizes {old} and {new} do not allow a consistency proof")]
    BadSizes {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The tree size asked for is larger than the tree.
    #[error("tree size {asked} is larger than the tree ({have})")]
    BeyondTree {
        /// The size asked for.
        asked: u64,
        /// The size the tree has.
        have: u64,
    },
    /// The proof has too many or too few hashes.
    #[error("proof has the wrong number of hashes")]
    WrongProofLength,
    /// The recomputed root does not match the expected one.
    #[error("recomputed root does not match")]
    RootMismatch,
    /// A hash is not 32 bytes long.
    #[error("a hash is not 32 bytes long")]
    BadHashLength,
    /// A node hash could not be read from the store.
    #[error("cannot read a node hash")]
    Store(#[source] io::Error),
}

/// Hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    sha256(&[&[]])
}

/// Leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// Interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

pub(crate) fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Read access to the hashes of complete subtrees.
pub trait NodeStore {
    /// Hash of the perfect subtree at `level` covering leaves `[index·2^level, (index+1)·2^level)`.
    /// Callers only ask for subtrees that lie within the tree.
    fn node(&self, level: u32, index: u64) -> io::Result<Hash>;
    /// Number of leaves stored.
    fn leaf_count(&self) -> u64;
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[begin, end)`, `begin < end`, reading stored perfect subtrees.
fn range_hash<S: NodeStore + ?Sized>(store: &S, begin: u64, end: u64) -> Result<Hash, MerkleError> {
    let n = end - begin;
    if n.is_power_of_two() && begin.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return store.node(level, begin >> level).map_err(MerkleError::Store);
    }
    let k = split_point(n);
    let left = range_hash(store, begin, begin + k)?;
    let right = range_hash(store, begin + k, end)?;
    Ok(node_hash(&left, &right))
}

fn check_size<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<(), MerkleError> {
    let have = store.leaf_count();
    if size > have {
        return Err(MerkleError::BeyondTree { asked: size, have });
    }
    Ok(())
}

/// Root (tree head) of the first `size` leaves.
pub fn root<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<Hash, MerkleError> {
    check_size(store, size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(store, 0, size)
}

/// Inclusion proof (RFC 9162 PATH) of leaf `index` in the tree of the first `size` leaves.
pub fn inclusion_proof<S: NodeStore + ?Sized>(store: &S, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    check_size(store, size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::with_capacity(64);
    path(store, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<S: NodeStore + ?Sized>(
    store: &S,
    m: u64,
    begin: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), MerkleError> {
    let n = end - begin;
    if n == 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < begin + k {
        path(store, m, begin, begin + k, out)?;
        out.push(range_hash(store, begin + k, end)?);
    } else {
        path(store, m, begin + k, end, out)?;
        out.push(range_hash(store, begin, begin + k)?);
    }
    Ok(())
}

/// Consistency proof (RFC 9162 PROOF) between the trees of the first `old` and `new` leaves.
/// `0 < old <= new`; equal sizes give an empty proof.
pub fn consistency_proof<S: NodeStore + ?Sized>(store: &S, old: u64, new: u64) -> Result<Vec<Hash>, MerkleError> {
    check_size(store, new)?;
    if old == 0 || old > new {
        return Err(MerkleError::BadSizes { old, new });
    }
    let mut out = Vec::with_capacity(64);
    subproof(store, old, 0, new, true, &mut out)?;
    Ok(out)
}

fn subproof<S: NodeStore + ?Sized>(
    store: &S,
    m: u64,
    begin: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), MerkleError> {
    let n = end - begin;
    if m == n {
        if !whole {
            out.push(range_hash(store, begin, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(store, m, begin, begin + k, whole, out)?;
        out.push(range_hash(store, begin + k, end)?);
    } else {
        subproof(store, m - k, begin + k, end, false, out)?;
        out.push(range_hash(store, begin, begin + k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(MerkleError::WrongProofLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::WrongProofLength);
    }
    if &r != root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2). `old` must be at least 1: a proof from the
/// empty tree proves nothing and is rejected.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old == 0 || old > new {
        return Err(MerkleError::BadSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength);
        }
        if old_root != new_root {
            return Err(MerkleError::RootMismatch);
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(MerkleError::WrongProofLength);
    }
    // Step 1: if old is a power of two, the old root is the first node of the path.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    let mut f = old - 1;
    let mut s = new - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = *path[0];
    let mut sr = *path[0];
    for c in &path[1..] {
        if s == 0 {
            return Err(MerkleError::WrongProofLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::WrongProofLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// [`verify_consistency`] over untyped bytes, as they come off the wire: a hash that is not 32
/// bytes fails, except that two equal trees (same size, identical roots, empty proof) are
/// consistent whatever their roots' length, as in the reference verifier.
pub fn verify_consistency_bytes(
    old: u64,
    new: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[Vec<u8>],
) -> Result<(), MerkleError> {
    if old != 0 && old == new && proof.is_empty() {
        return if old_root == new_root { Ok(()) } else { Err(MerkleError::RootMismatch) };
    }
    let to_hash = |b: &[u8]| Hash::try_from(b).map_err(|_| MerkleError::BadHashLength);
    let proof = proof.iter().map(|p| to_hash(p)).collect::<Result<Vec<_>, _>>()?;
    verify_consistency(old, new, &to_hash(old_root)?, &to_hash(new_root)?, &proof)
}

/// Appends leaf `hash` to levels held as vectors, computing every subtree it completes. Shared by
/// [`MemTree`] and the on-disk store so both build the same nodes.
pub(crate) fn completed_subtrees(left_edge: &mut Vec<Option<Hash>>, leaf: Hash, mut emit: impl FnMut(u32, Hash)) {
    let mut level = 0u32;
    let mut h = leaf;
    loop {
        emit(level, h);
        let slot = level as usize;
        if left_edge.len() <= slot {
            left_edge.resize(slot + 1, None);
        }
        match left_edge[slot].take() {
            Some(left) => {
                h = node_hash(&left, &h);
                level += 1;
            }
            None => {
                left_edge[slot] = Some(h);
                return;
            }
        }
    }
}

/// An in-memory [`NodeStore`], for verifiers that re-derive a tree (and for tests).
#[derive(Clone, Debug, Default)]
pub struct MemTree {
    levels: Vec<Vec<Hash>>,
    edge: Vec<Option<Hash>>,
}

impl MemTree {
    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        completed_subtrees(&mut self.edge, leaf, |level, h| {
            let l = level as usize;
            if levels.len() <= l {
                levels.resize_with(l + 1, Vec::new);
            }
            levels[l].push(h);
        });
    }

    /// The leaf hash at `index`, if stored.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first().and_then(|l| usize::try_from(index).ok().and_then(|i| l.get(i).copied()))
    }
}

impl NodeStore for MemTree {
    fn node(&self, level: u32, index: u64) -> io::Result<Hash> {
        self.levels
            .get(level as usize)
            .and_then(|l| usize::try_from(index).ok().and_then(|i| l.get(i).copied()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "node not stored"))
    }

    fn leaf_count(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/merkle");

    fn testdata() -> PathBuf {
        let p = PathBuf::from(TESTDATA);
        assert!(
            p.join("SOURCE.md").is_file(),
            "merkle test vectors missing at {}: the shared/ folder must sit beside the checkout",
            p.display()
        );
        p
    }

    fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                json_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }

    /// Decodes one base64 hash; `None` when it is not exactly 32 bytes (a case that must fail).
    fn hash(v: &serde_json::Value) -> Option<Hash> {
        let s = v.as_str()?;
        let b = STANDARD.decode(s).ok()?;
        b.try_into().ok()
    }

    fn hashes(v: &serde_json::Value) -> Option<Vec<Hash>> {
        match v {
            serde_json::Value::Null => Some(Vec::new()),
            serde_json::Value::Array(a) => a.iter().map(hash).collect(),
            _ => None,
        }
    }

    fn run_inclusion(case: &serde_json::Value) -> bool {
        let (Some(root), Some(leaf), Some(proof)) =
            (hash(&case["root"]), hash(&case["leafHash"]), hashes(&case["proof"]))
        else {
            return false;
        };
        let (Some(idx), Some(size)) = (case["leafIdx"].as_i64(), case["treeSize"].as_i64()) else { return false };
        let (Ok(idx), Ok(size)) = (u64::try_from(idx), u64::try_from(size)) else { return false };
        verify_inclusion(idx, size, &leaf, &proof, &root).is_ok()
    }

    fn bytes(v: &serde_json::Value) -> Option<Vec<u8>> {
        STANDARD.decode(v.as_str()?).ok()
    }

    fn run_consistency(case: &serde_json::Value) -> bool {
        let proof: Option<Vec<Vec<u8>>> = match &case["proof"] {
            serde_json::Value::Null => Some(Vec::new()),
            serde_json::Value::Array(a) => a.iter().map(bytes).collect(),
            _ => None,
        };
        let (Some(r1), Some(r2), Some(proof)) = (bytes(&case["root1"]), bytes(&case["root2"]), proof) else {
            return false;
        };
        let (Some(s1), Some(s2)) = (case["size1"].as_i64(), case["size2"].as_i64()) else { return false };
        let (Ok(s1), Ok(s2)) = (u64::try_from(s1), u64::try_from(s2)) else { return false };
        verify_consistency_bytes(s1, s2, &r1, &r2, &proof).is_ok()
    }

    fn run_all(sub: &str, run: fn(&serde_json::Value) -> bool) -> (usize, usize) {
        let mut files = Vec::new();
        json_files(&testdata().join(sub), &mut files);
        assert!(files.len() > 50, "too few {sub} vectors found: {}", files.len());
        let mut accepted = 0;
        for f in &files {
            let case: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            let want_err = case["wantErr"].as_bool().expect("wantErr");
            let ok = run(&case);
            assert_eq!(ok, !want_err, "{}: accepted={ok}, wantErr={want_err}", f.display());
            accepted += usize::from(ok);
        }
        (files.len(), accepted)
    }

    #[test]
    fn inclusion_vectors_accept_exactly_the_valid_cases() {
        let (total, accepted) = run_all("inclusion", run_inclusion);
        assert!(accepted > 0 && accepted < total);
    }

    #[test]
    fn consistency_vectors_accept_exactly_the_valid_cases() {
        let (total, accepted) = run_all("consistency", run_consistency);
        assert!(accepted > 0 && accepted < total);
    }

    fn standard_leaves() -> Vec<Vec<u8>> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|h| hex::decode(h).unwrap())
            .collect()
    }

    #[test]
    fn roots_match_source_md() {
        let text = std::fs::read_to_string(testdata().join("SOURCE.md")).unwrap();
        let mut want = Vec::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            if cols.len() == 4 && cols[1].parse::<u64>().is_ok() && cols[2].len() == 64 {
                want.push((cols[1].parse::<u64>().unwrap(), cols[2].to_owned()));
            }
        }
        assert_eq!(want.len(), 9, "SOURCE.md root table not found");
        let mut tree = MemTree::default();
        let leaves = standard_leaves();
        for (size, root_hex) in want {
            while tree.leaf_count() < size {
                tree.push(leaf_hash(&leaves[tree.leaf_count() as usize]));
            }
            assert_eq!(hex::encode(root(&tree, size).unwrap()), root_hex, "size {size}");
        }
        assert_eq!(
            hex::encode(leaf_hash(b"L123456")),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
    }

    #[test]
    fn generated_proofs_match_vectors() {
        // inclusion/1/happy-path.json is leaf 0 of the 8-leaf standard tree.
        let mut tree = MemTree::default();
        for l in standard_leaves() {
            tree.push(leaf_hash(&l));
        }
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(testdata().join("inclusion/1/happy-path.json")).unwrap()).unwrap();
        assert_eq!(inclusion_proof(&tree, 0, 8).unwrap(), hashes(&case["proof"]).unwrap());
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(testdata().join("consistency/1/happy-path.json")).unwrap()).unwrap();
        assert_eq!(consistency_proof(&tree, 1, 8).unwrap(), hashes(&case["proof"]).unwrap());
    }

    /// Root computed the slow way, straight from RFC 9162's definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn tree_of(n: u64) -> (MemTree, Vec<Hash>) {
        let mut tree = MemTree::default();
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for l in &leaves {
            tree.push(*l);
        }
        (tree, leaves)
    }

    fn flip(h: &Hash, byte: usize, bit: u8) -> Hash {
        let mut h = *h;
        h[byte % 32] ^= 1 << (bit % 8);
        h
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify_and_any_flip_fails(n in 1u64..300, i in any::<u64>(), byte in 0usize..32, bit in 0u8..8, which in any::<usize>()) {
            let (tree, leaves) = tree_of(n);
            let i = i % n;
            let root_n = root(&tree, n).unwrap();
            prop_assert_eq!(root_n, reference_root(&leaves));
            let proof = inclusion_proof(&tree, i, n).unwrap();
            verify_inclusion(i, n, &leaves[i as usize], &proof, &root_n).unwrap();
            prop_assert!(verify_inclusion(i, n, &flip(&leaves[i as usize], byte, bit), &proof, &root_n).is_err());
            prop_assert!(verify_inclusion(i, n, &leaves[i as usize], &proof, &flip(&root_n, byte, bit)).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let k = which % bad.len();
                bad[k] = flip(&bad[k], byte, bit);
                prop_assert!(verify_inclusion(i, n, &leaves[i as usize], &bad, &root_n).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_any_flip_fails(n in 1u64..300, m in any::<u64>(), byte in 0usize..32, bit in 0u8..8, which in any::<usize>()) {
            let (tree, leaves) = tree_of(n);
            let m = m % n + 1;
            let r1 = root(&tree, m).unwrap();
            let r2 = root(&tree, n).unwrap();
            prop_assert_eq!(r1, reference_root(&leaves[..m as usize]));
            let proof = consistency_proof(&tree, m, n).unwrap();
            verify_consistency(m, n, &r1, &r2, &proof).unwrap();
            prop_assert!(verify_consistency(m, n, &flip(&r1, byte, bit), &r2, &proof).is_err());
            prop_assert!(verify_consistency(m, n, &r1, &flip(&r2, byte, bit), &proof).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let k = which % bad.len();
                bad[k] = flip(&bad[k], byte, bit);
                prop_assert!(verify_consistency(m, n, &r1, &r2, &bad).is_err());
            }
        }
    }
}

//! The exact differencing audit: which record sets the released numbers determine.
//!
//! Every released number is a linear equation over the *atoms*: the finest groups of records that the
//! released record sets separate (records in exactly the same sets are indistinguishable to anyone who
//! only sees those numbers), keeping only groups that can hold records (a case closes on or after it was
//! filed; a pending case has no closure method and is not on time). With A the 0/1 matrix of record sets
//! × atoms and b the released counts, a record set S (a 0/1 vector over atoms) is *determined* exactly
//! when 1_S lies in the row space of A, and its count is then λ·b. The audit refuses a release after
//! which some determined S holds 1..k−1 records.
//!
//! How: A is brought to reduced row echelon form with exact rationals (checked i128). Any w in the row
//! space is Σ_p w_p·row_p over the pivot atoms p, so a determined S is a choice v ∈ {0,1}^pivots such
//! that Σ_p v_p·R[p][f] ∈ {0,1} for every free atom f, with count Σ_p v_p·b'_p. Pivots that share no
//! free atom are independent blocks; each block is searched exhaustively with interval propagation on
//! the free atoms, under a node budget. Every determined set is a disjoint union of minimal ones and
//! counts are non-negative, so "some determined set has 1..k−1 records" is decided exactly by the
//! enumeration. When a budget or size cap is exceeded the release is refused as too complex to audit:
//! the audit never answers unchecked.
//!
//! Sums of money: each money field is its own system (the released sums of that field, and the empty
//! remainders of answers). A determined sum over S is safe only when S is a union of released money
//! cells (each shown cell passed the threshold and (1, 85) dominance, and so does any union of them),
//! up to records known to be absent; anything else — the money of a window minus another, isolating a
//! few dominant cases — is refused.
//!
//! Only the record sets connected to the new ones (transitively overlapping) matter: the rows of other
//! components use other atoms, so the row space splits and their determined sets are unchanged.
//!
//! Before the row reduction, atoms anyone can tell are empty are dropped: a released 0 over atoms whose
//! coefficients share one sign (an answer's empty remainder) empties each of them, counts being
//! non-negative ([`known_empty`]). A small set the held releases already determined is not news: only
//! a set that the new releases make determined is refused (so a book carried over from older rules
//! does not refuse everything after it).
//!
//! Cost: finding the atoms is bounded by [`Limits::max_work`] and the search by [`Limits::max_nodes`];
//! a component of more than [`Limits::max_rows`] releases is not attempted. Cross-classified answers
//! multiply atoms (500 causes × 32 courts × 20 types × the months), so large shapes exceed the limits
//! within a fraction of a second. Such a shape is then refused, or — with
//! [`Limits::pairs_when_too_complex`], the default — checked by the pairwise differencing check of
//! [`super::pairs`] (differences of nested or equal record sets and greedy packings, across measures
//! and with courts related to regions), a weaker guarantee that [`Checked::Pairs`] names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::recordset::{CLOSURE, ON_TIME, OPEN, RESULT, RecordSet, Release, Topology, domain};

/// Bounds on the work of one audit; beyond them the release is refused as too complex.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most grid cells enumerated to find the atoms.
    pub max_cells: usize,
    /// Most releases in the connected component audited.
    pub max_rows: usize,
    /// Most search steps over all blocks of one system (a node of the search costs one step and one
    /// more for each free atom its pivot's row holds).
    pub max_nodes: u64,
    /// Most steps (term memberships examined) spent finding the atoms: a shape whose atoms would take
    /// longer is refused early rather than after seconds of work.
    pub max_work: u64,
    /// What to do when a shape exceeds these limits: `true` checks it with the pairwise differencing
    /// check ([`super::pairs`], a weaker guarantee) and answers when that finds nothing; `false`
    /// refuses it as too complex to audit.
    pub pairs_when_too_complex: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cells: 1_000_000,
            max_rows: 4_000,
            max_nodes: 2_000_000,
            max_work: 20_000_000,
            pairs_when_too_complex: true,
        }
    }
}

/// Why the audit refuses a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A record set of 1..k−1 records would be determined (named by the measure of a new release
    /// in its component).
    Small {
        /// Measure of the release that completes the derivation.
        measure: String,
    },
    /// A sum of money over records that are not a union of released money cells would be determined.
    Money {
        /// Measure of the release that completes the derivation.
        measure: String,
    },
    /// The audit would exceed its limits: the release is refused rather than answered unchecked.
    TooComplex,
}

impl Refusal {
    /// A short reason for messages and the audit entry (no value, no record).
    pub fn reason(&self) -> String {
        match self {
            Refusal::Small { measure } => measure.clone(),
            Refusal::Money { measure } => {
                format!("{measure} (a sum of money over records not released as a safe cell)")
            }
            Refusal::TooComplex => "too complex to audit".into(),
        }
    }
}

/// Exact rational with checked i128 parts (denominator positive, reduced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Q {
    n: i128,
    d: i128,
}

struct Overflow;

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Q {
    const ZERO: Q = Q { n: 0, d: 1 };
    const ONE: Q = Q { n: 1, d: 1 };

    fn int(n: i64) -> Q {
        Q { n: n.into(), d: 1 }
    }

    fn new(n: i128, d: i128) -> Result<Q, Overflow> {
        if d == 0 {
            return Err(Overflow);
        }
        let g = gcd(n, d).max(1);
        let (n, d) = (n / g, d / g);
        if d < 0 { Ok(Q { n: n.checked_neg().ok_or(Overflow)?, d: -d }) } else { Ok(Q { n, d }) }
    }

    fn add(self, o: Q) -> Result<Q, Overflow> {
        if self.d == 1 && o.d == 1 {
            return Ok(Q { n: self.n.checked_add(o.n).ok_or(Overflow)?, d: 1 });
        }
        if self.d == o.d {
            return Q::new(self.n.checked_add(o.n).ok_or(Overflow)?, self.d);
        }
        let n = self.n.checked_mul(o.d).and_then(|a| o.n.checked_mul(self.d).and_then(|b| a.checked_add(b)));
        Q::new(n.ok_or(Overflow)?, self.d.checked_mul(o.d).ok_or(Overflow)?)
    }

    fn neg(self) -> Q {
        Q { n: -self.n, d: self.d }
    }

    fn sub(self, o: Q) -> Result<Q, Overflow> {
        self.add(o.neg())
    }

    fn mul(self, o: Q) -> Result<Q, Overflow> {
        if self.d == 1 && o.d == 1 {
            return Ok(Q { n: self.n.checked_mul(o.n).ok_or(Overflow)?, d: 1 });
        }
        Q::new(self.n.checked_mul(o.n).ok_or(Overflow)?, self.d.checked_mul(o.d).ok_or(Overflow)?)
    }

    fn div(self, o: Q) -> Result<Q, Overflow> {
        Q::new(self.n.checked_mul(o.d).ok_or(Overflow)?, self.d.checked_mul(o.n).ok_or(Overflow)?)
    }

    fn is_zero(self) -> bool {
        self.n == 0
    }

    fn positive(self) -> bool {
        self.n > 0
    }

    /// Whether 0 < self < k.
    fn small(self, k: u32) -> bool {
        self.n > 0 && self.n < i128::from(k) * self.d
    }
}

impl From<Overflow> for Refusal {
    fn from(_: Overflow) -> Self {
        Refusal::TooComplex
    }
}

/// Whether two record sets can share a record.
pub fn overlap(a: &RecordSet, b: &RecordSet) -> bool {
    if a.dataset != b.dataset {
        return false;
    }
    let (f, l) = (a.first.meet(b.first), a.last.meet(b.last));
    if f.is_empty() || l.is_empty() || f.lo > l.hi {
        return false;
    }
    a.fields.iter().all(|(axis, va)| b.fields.get(axis).is_none_or(|vb| va.iter().any(|v| vb.binary_search(v).is_ok())))
}

fn releases_overlap(a: &Release, b: &Release) -> bool {
    a.terms.iter().any(|(_, x)| b.terms.iter().any(|(_, y)| overlap(x, y)))
}

/// The released numbers of one scope, and the audit of new ones against them.
#[derive(Default, Clone)]
pub struct Ledger {
    releases: Vec<Release>,
    seen: HashSet<Release>,
    /// The held cells, for the pairwise check.
    cells: super::pairs::Index,
    /// Count of each held single-set release (to give an empty remainder's whole).
    counts: HashMap<RecordSet, i64>,
}

/// How a release was found safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// By the exact audit: no set of 1..k−1 records is determined.
    Exact,
    /// The shape exceeded the exact audit's limits; the pairwise differencing check found nothing.
    Pairs,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// How many distinct releases it holds.
    pub fn len(&self) -> usize {
        self.releases.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.releases.is_empty()
    }

    /// Whether exactly this release (record sets and values) is held.
    pub fn contains(&self, r: &Release) -> bool {
        self.seen.contains(r)
    }

    /// Records a release (an identical repeat is kept once).
    pub fn push(&mut self, r: Release) {
        if !self.seen.insert(r.clone()) {
            return;
        }
        match r.terms.as_slice() {
            [(1, set)] => {
                self.counts.insert(set.clone(), r.count);
                self.cells.push(super::pairs::Cell {
                    set: super::pairs::normalize(set),
                    count: r.count,
                    measure: r.measure.clone(),
                });
            }
            [(1, whole), rest @ ..] if r.count == 0 && !rest.is_empty() && rest.iter().all(|(c, _)| *c == -1) => {
                let total: Option<i64> = rest.iter().map(|(_, s)| self.counts.get(s).copied()).sum();
                if let Some(count) = total {
                    let cell =
                        super::pairs::Cell { set: super::pairs::normalize(whole), count, measure: r.measure.clone() };
                    self.cells.push(cell);
                }
            }
            _ => {}
        }
        self.releases.push(r);
    }

    /// Decides whether releasing `new` on top of what is held lets anyone determine a set of 1..k−1
    /// records (or a sum of money that is not a union of released money cells). Releases already held
    /// are not audited again.
    pub fn audit(&self, new: &[Release], k: u32, topology: &Topology, limits: &Limits) -> Result<(), Refusal> {
        self.audit_checked(new, k, topology, limits).map(|_| ())
    }

    /// [`Ledger::audit`], saying how the release was found safe: by the exact audit, or (when the shape
    /// exceeds the limits and [`Limits::pairs_when_too_complex`] is set) by the pairwise check only.
    pub fn audit_checked(
        &self,
        new: &[Release],
        k: u32,
        topology: &Topology,
        limits: &Limits,
    ) -> Result<Checked, Refusal> {
        match self.audit_exact(new, k, topology, limits) {
            Ok(()) => Ok(Checked::Exact),
            Err(Refusal::TooComplex) if limits.pairs_when_too_complex => {
                let fresh: Vec<&Release> = new.iter().filter(|r| !self.seen.contains(*r)).collect();
                match super::pairs::find_small(&self.cells, &super::pairs::cells_of(&fresh), k) {
                    Some(measure) => Err(Refusal::Small { measure }),
                    None => Ok(Checked::Pairs),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn audit_exact(&self, new: &[Release], k: u32, topology: &Topology, limits: &Limits) -> Result<(), Refusal> {
        let mut fresh: Vec<&Release> = Vec::new();
        let mut fresh_seen: HashSet<&Release> = HashSet::new();
        for r in new {
            if !self.seen.contains(r) && fresh_seen.insert(r) && !r.terms.is_empty() {
                fresh.push(r);
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        if fresh.len() > limits.max_rows {
            return Err(Refusal::TooComplex);
        }
        // The component of the fresh releases: everything transitively overlapping them. Each held
        // release is compared until it joins, so the work is the ledger's size times the releases the
        // search passes through before the rest has joined.
        let mut outside: Vec<usize> = (0..self.releases.len()).collect();
        let mut queue: Vec<&Release> = fresh.clone();
        let mut old: Vec<usize> = Vec::new();
        while let Some(r) = queue.pop() {
            let mut i = 0;
            while i < outside.len() {
                let o = &self.releases[outside[i]];
                if releases_overlap(r, o) {
                    old.push(outside.swap_remove(i));
                    queue.push(o);
                    if old.len() + fresh.len() > limits.max_rows {
                        return Err(Refusal::TooComplex);
                    }
                } else {
                    i += 1;
                }
            }
        }
        old.sort_unstable();
        let mut rows: Vec<&Release> = old.iter().map(|&i| &self.releases[i]).collect();
        let first_new = rows.len();
        rows.extend(fresh.iter().copied());
        audit_rows(&rows, first_new, k, topology, limits)
    }
}

/// Audits every release of `all` together (the first `first_new` are taken as already released:
/// an inconsistency among them is ignored). For tests and tools; [`Ledger::audit`] finds components.
pub fn audit_all(
    all: &[Release],
    first_new: usize,
    k: u32,
    topology: &Topology,
    limits: &Limits,
) -> Result<(), Refusal> {
    let rows: Vec<&Release> = all.iter().collect();
    audit_rows(&rows, first_new, k, topology, limits)
}

/// One axis of the grid: date classes (elementary spans) or value classes.
struct DateAxis {
    /// Start of each class; class i is `cuts[i]..cuts[i+1]-1` (the last one up to [`OPEN`]).
    cuts: Vec<i32>,
}

impl DateAxis {
    fn new(bounds: impl Iterator<Item = (i32, i32)>, split_open: bool) -> DateAxis {
        let mut cuts: BTreeSet<i32> = BTreeSet::new();
        cuts.insert(i32::MIN);
        for (lo, hi) in bounds {
            cuts.insert(lo);
            if hi < OPEN {
                cuts.insert(hi + 1);
            }
        }
        if split_open {
            cuts.insert(OPEN);
        }
        DateAxis { cuts: cuts.into_iter().collect() }
    }

    fn class_of(&self, day: i32) -> usize {
        self.cuts.partition_point(|c| *c <= day) - 1
    }

    fn span(&self, class: usize) -> (i32, i32) {
        let hi = self.cuts.get(class + 1).map_or(OPEN, |c| c - 1);
        (self.cuts[class], hi)
    }
}

/// A categorical axis: value classes (values in exactly the same restricting sets).
struct CatAxis {
    name: String,
    /// For each class: whether it holds the empty value and whether it holds a non-empty value, and
    /// whether it holds `0` (for `on_time`).
    props: Vec<(bool, bool, bool)>,
    /// Class of each listed value.
    class_of: HashMap<String, usize>,
}

struct Grid {
    first: DateAxis,
    last: DateAxis,
    cats: Vec<CatAxis>,
    closure_axis: Option<usize>,
    on_time_axis: Option<usize>,
}

const OTHER: &str = "\u{0}other";

impl Grid {
    fn build(terms: &[&RecordSet], topology: &Topology) -> Grid {
        let dataset = terms.first().map_or("cases", |t| t.dataset.as_str());
        let first = DateAxis::new(terms.iter().map(|t| (t.first.lo, t.first.hi)), false);
        let last = DateAxis::new(terms.iter().map(|t| (t.last.lo, t.last.hi)), true);
        let mut names: BTreeSet<&str> = terms.iter().flat_map(|t| t.fields.keys().map(String::as_str)).collect();
        let status_axis = if dataset == "mediations" { RESULT } else { CLOSURE };
        names.insert(status_axis);
        if dataset == "cases" {
            names.insert(ON_TIME);
        }
        let mut cats = Vec::new();
        for name in names {
            let mut member: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            let dom = domain(dataset, name, topology);
            match &dom {
                Some(d) => d.iter().for_each(|v| {
                    member.insert(v.as_str(), Vec::new());
                }),
                None => {
                    member.insert(OTHER, Vec::new());
                }
            }
            for (i, t) in terms.iter().enumerate() {
                if let Some(vals) = t.fields.get(name) {
                    for v in vals {
                        if let Some(m) = member.get_mut(v.as_str()) {
                            m.push(i);
                        } else if dom.is_none() {
                            member.insert(v.as_str(), vec![i]);
                        }
                    }
                }
            }
            let mut ids: HashMap<Vec<usize>, usize> = HashMap::new();
            let mut props: Vec<(bool, bool, bool)> = Vec::new();
            let mut class_of = HashMap::new();
            for (v, m) in member {
                let next = ids.len();
                let c = *ids.entry(m).or_insert(next);
                if c == props.len() {
                    props.push((false, false, false));
                }
                let p = &mut props[c];
                if v.is_empty() {
                    p.0 = true;
                } else {
                    p.1 = true;
                }
                if v == "0" || v == OTHER {
                    p.2 = true;
                }
                class_of.insert(v.to_string(), c);
            }
            cats.push(CatAxis { name: name.to_string(), props, class_of });
        }
        let closure_axis = cats.iter().position(|c| c.name == status_axis);
        let on_time_axis = cats.iter().position(|c| c.name == ON_TIME);
        Grid { first, last, cats, closure_axis, on_time_axis }
    }

    /// The classes of a categorical axis a record set allows (`None`: every class).
    fn allowed(&self, axis: usize, t: &RecordSet) -> Option<BTreeSet<u32>> {
        let a = &self.cats[axis];
        t.fields.get(&a.name).map(|vals| vals.iter().filter_map(|v| a.class_of.get(v)).map(|c| *c as u32).collect())
    }
}

/// The atoms of a component and each release's row over them.
struct System {
    rows: Vec<Vec<(u32, i64)>>,
}

/// The steps left for finding the atoms ([`Limits::max_work`]).
struct Work(u64);

impl Work {
    fn spend(&mut self, n: u64) -> Result<(), Refusal> {
        self.0 = self.0.checked_sub(n).ok_or(Refusal::TooComplex)?;
        Ok(())
    }
}

/// Splits every partial cell (the terms that may still hold it, and whether its records are open) by
/// the classes of one categorical axis, merging cells that the terms no longer tell apart.
fn split(
    partials: Vec<(Vec<u32>, bool)>,
    classes: usize,
    allowed: &[Option<BTreeSet<u32>>],
    feasible: impl Fn(usize, bool) -> bool,
    limit: usize,
    work: &mut Work,
) -> Result<Vec<(Vec<u32>, bool)>, Refusal> {
    let mut out: HashSet<(Vec<u32>, bool)> = HashSet::new();
    for (p, open) in partials {
        work.spend(p.len() as u64 * classes as u64)?;
        let restricting: Vec<u32> = p.iter().copied().filter(|t| allowed[*t as usize].is_some()).collect();
        if restricting.is_empty() {
            if (0..classes).any(|c| feasible(c, open)) {
                out.insert((p, open));
            }
            continue;
        }
        for c in 0..classes {
            if !feasible(c, open) {
                continue;
            }
            let kept: Vec<u32> = p
                .iter()
                .copied()
                .filter(|t| allowed[*t as usize].as_ref().is_none_or(|set| set.contains(&(c as u32))))
                .collect();
            if !kept.is_empty() {
                out.insert((kept, open));
            }
        }
        if out.len() > limit {
            return Err(Refusal::TooComplex);
        }
    }
    Ok(out.into_iter().collect())
}

/// Finds the atoms by refining axis by axis: each partial cell is the list of terms that may hold it,
/// cells with the same list are merged (nothing told them apart so far), so the work follows the
/// number of distinct groups, not the product of every axis's classes. Dates come first, with the
/// structure of a record (closed on or after filed; an open case has no closure method and is not on
/// time; a closed case has a method).
fn atoms_of(rows: &[&Release], topology: &Topology, limits: &Limits) -> Result<System, Refusal> {
    let terms: Vec<(usize, i64, &RecordSet)> =
        rows.iter().enumerate().flat_map(|(ri, r)| r.terms.iter().map(move |(c, t)| (ri, i64::from(*c), t))).collect();
    let sets: Vec<&RecordSet> = terms.iter().map(|(_, _, t)| *t).collect();
    let mut work = Work(limits.max_work);
    let grid = Grid::build(&sets, topology);
    let range = |axis: &DateAxis, lo: i32, hi: i32| -> (usize, usize) {
        if lo > hi { (1, 0) } else { (axis.class_of(lo), axis.class_of(hi)) }
    };
    let first: Vec<(usize, usize)> = sets.iter().map(|t| range(&grid.first, t.first.lo, t.first.hi)).collect();
    let last: Vec<(usize, usize)> = sets.iter().map(|t| range(&grid.last, t.last.lo, t.last.hi)).collect();
    // First dates: classes held by the same terms merge, keeping their earliest day.
    let mut by_first: HashMap<Vec<u32>, i32> = HashMap::new();
    for f in 0..grid.first.cuts.len() {
        work.spend(sets.len() as u64)?;
        let p: Vec<u32> = (0..sets.len()).filter(|&t| first[t].0 <= f && f <= first[t].1).map(|t| t as u32).collect();
        if !p.is_empty() {
            let lo = grid.first.span(f).0;
            let e = by_first.entry(p).or_insert(lo);
            *e = (*e).min(lo);
        }
    }
    // Last dates, where a record can close on or after it was filed.
    let mut partials: HashSet<(Vec<u32>, bool)> = HashSet::new();
    for (p, lo) in by_first {
        work.spend(p.len() as u64 * grid.last.cuts.len() as u64)?;
        for l in 0..grid.last.cuts.len() {
            let (l_lo, l_hi) = grid.last.span(l);
            if lo > l_hi {
                continue;
            }
            let kept: Vec<u32> =
                p.iter().copied().filter(|&t| last[t as usize].0 <= l && l <= last[t as usize].1).collect();
            if !kept.is_empty() {
                partials.insert((kept, l_lo == OPEN));
            }
        }
        if partials.len() > limits.max_cells {
            return Err(Refusal::TooComplex);
        }
    }
    let mut partials: Vec<(Vec<u32>, bool)> = partials.into_iter().collect();
    // Categorical axes: the closure method (or result) and on-time first, while openness is known.
    let mut order: Vec<usize> = Vec::new();
    order.extend(grid.closure_axis);
    order.extend(grid.on_time_axis);
    order.extend((0..grid.cats.len()).filter(|a| Some(*a) != grid.closure_axis && Some(*a) != grid.on_time_axis));
    for axis in order {
        let allowed: Vec<Option<BTreeSet<u32>>> = sets.iter().map(|t| grid.allowed(axis, t)).collect();
        let props = &grid.cats[axis].props;
        let feasible = |c: usize, open: bool| -> bool {
            let (has_empty, has_value, has_zero) = props[c];
            if Some(axis) == grid.closure_axis {
                if open { has_empty } else { has_value }
            } else if Some(axis) == grid.on_time_axis {
                !open || has_zero
            } else {
                true
            }
        };
        partials = split(partials, props.len(), &allowed, feasible, limits.max_cells, &mut work)?;
    }
    // Atoms: groups covered by the same releases with the same coefficients.
    let mut atom_of: HashMap<Vec<(u32, i64)>, u32> = HashMap::new();
    let mut rows_out: Vec<Vec<(u32, i64)>> = vec![Vec::new(); rows.len()];
    let mut sigs: Vec<Vec<(u32, i64)>> = partials
        .into_iter()
        .map(|(p, _)| {
            let mut sig: Vec<(u32, i64)> = Vec::new();
            for t in p {
                let (r, c, _) = terms[t as usize];
                match sig.last_mut() {
                    Some((last, x)) if *last == r as u32 => *x += c,
                    _ => sig.push((r as u32, c)),
                }
            }
            sig.retain(|(_, c)| *c != 0);
            sig
        })
        .collect();
    sigs.sort_unstable();
    sigs.dedup();
    for sig in sigs {
        if sig.is_empty() {
            continue;
        }
        let a = atom_of.len() as u32;
        for (r, c) in &sig {
            rows_out[*r as usize].push((a, *c));
        }
        atom_of.insert(sig, a);
    }
    Ok(System { rows: rows_out })
}

/// A sparse row: sorted (atom, coefficient) pairs and its value.
#[derive(Clone, Debug)]
struct Row {
    entries: Vec<(u32, Q)>,
    value: Q,
}

/// Reduced row echelon form, kept reduced as rows are inserted.
struct Echelon {
    rows: Vec<Row>,
    pivot_of: HashMap<u32, usize>,
    /// For each non-pivot atom, the rows that may hold it.
    holders: HashMap<u32, Vec<usize>>,
}

/// What inserting a row found.
enum Inserted {
    /// A new pivot.
    Pivot,
    /// The row followed from earlier ones, with this residual value (zero when consistent).
    Dependent(Q),
}

fn axpy(row: &[(u32, Q)], factor: Q, other: &[(u32, Q)]) -> Result<Vec<(u32, Q)>, Overflow> {
    // row − factor × other, both sorted by atom.
    let mut out = Vec::with_capacity(row.len() + other.len());
    let (mut i, mut j) = (0, 0);
    while i < row.len() || j < other.len() {
        let take_row = j >= other.len() || (i < row.len() && row[i].0 < other[j].0);
        let take_other = i >= row.len() || (j < other.len() && other[j].0 < row[i].0);
        if take_row {
            out.push(row[i]);
            i += 1;
        } else if take_other {
            out.push((other[j].0, factor.mul(other[j].1)?.neg()));
            j += 1;
        } else {
            let v = row[i].1.sub(factor.mul(other[j].1)?)?;
            if !v.is_zero() {
                out.push((row[i].0, v));
            }
            i += 1;
            j += 1;
        }
    }
    Ok(out)
}

impl Echelon {
    fn new() -> Echelon {
        Echelon { rows: Vec::new(), pivot_of: HashMap::new(), holders: HashMap::new() }
    }

    fn insert(&mut self, entries: &[(u32, i64)], value: i64) -> Result<Inserted, Overflow> {
        let mut row = Row {
            entries: {
                let mut e: Vec<(u32, Q)> = entries.iter().map(|(a, c)| (*a, Q::int(*c))).collect();
                e.sort_unstable_by_key(|(a, _)| *a);
                e
            },
            value: Q::int(value),
        };
        let pivots: Vec<(usize, Q)> =
            row.entries.iter().filter_map(|(a, c)| self.pivot_of.get(a).map(|p| (*p, *c))).collect();
        for (p, c) in pivots {
            let prow = &self.rows[p];
            row.entries = axpy(&row.entries, c, &prow.entries)?;
            row.value = row.value.sub(c.mul(prow.value)?)?;
        }
        let Some(&(pivot, c)) = row.entries.iter().min_by_key(|(a, _)| self.holders.get(a).map_or(0, Vec::len)) else {
            return Ok(Inserted::Dependent(row.value));
        };
        let inv = Q::ONE.div(c)?;
        for e in &mut row.entries {
            e.1 = e.1.mul(inv)?;
        }
        row.value = row.value.mul(inv)?;
        let idx = self.rows.len();
        // Eliminate the new pivot from every earlier row.
        if let Some(hs) = self.holders.remove(&pivot) {
            for h in hs {
                let Ok(pos) = self.rows[h].entries.binary_search_by_key(&pivot, |(a, _)| *a) else { continue };
                let f = self.rows[h].entries[pos].1;
                let updated = axpy(&self.rows[h].entries, f, &row.entries)?;
                let value = self.rows[h].value.sub(f.mul(row.value)?)?;
                for (a, _) in &updated {
                    if *a != pivot && !self.pivot_of.contains_key(a) {
                        let list = self.holders.entry(*a).or_default();
                        if list.last() != Some(&h) {
                            list.push(h);
                        }
                    }
                }
                self.rows[h] = Row { entries: updated, value };
            }
        }
        for (a, _) in &row.entries {
            if *a != pivot {
                self.holders.entry(*a).or_default().push(idx);
            }
        }
        self.pivot_of.insert(pivot, idx);
        self.rows.push(row);
        Ok(Inserted::Pivot)
    }

    /// The value of the atom combination `w` when it lies in the row space.
    fn value_of(&self, w: &[(u32, Q)]) -> Result<Option<Q>, Overflow> {
        let mut rest: Vec<(u32, Q)> = w.to_vec();
        rest.sort_unstable_by_key(|(a, _)| *a);
        let mut value = Q::ZERO;
        for (a, c) in w {
            if let Some(p) = self.pivot_of.get(a) {
                let prow = &self.rows[*p];
                rest = axpy(&rest, *c, &prow.entries)?;
                value = value.add(c.mul(prow.value)?)?;
            }
        }
        Ok(if rest.is_empty() { Some(value) } else { None })
    }
}

/// What is done with each determined set (its atoms, sorted, and its value).
type Visitor<'v> = &'v mut dyn FnMut(&[u32], Q) -> Result<(), Refusal>;

/// Enumerates every determined set (a non-empty 0/1 vector of the row space) and hands each, with its
/// value, to `visit`; stops at the first refusal.
///
/// With `target` (lo, hi), only sets whose value can still fall in lo..=hi are visited: a branch is cut
/// when the value so far plus every remaining negative (positive) pivot value cannot reach the range.
fn each_determined(ech: &Echelon, limits: &Limits, target: Option<(Q, Q)>, visit: Visitor<'_>) -> Result<(), Refusal> {
    // Pivot rows linked by shared free atoms form blocks.
    let n = ech.rows.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut first_holder: HashMap<u32, usize> = HashMap::new();
    for (i, r) in ech.rows.iter().enumerate() {
        for (a, _) in &r.entries {
            if ech.pivot_of.get(a) == Some(&i) {
                continue;
            }
            match first_holder.get(a) {
                Some(&j) => {
                    let (x, y) = (find(&mut parent, i), find(&mut parent, j));
                    parent[x] = y;
                }
                None => {
                    first_holder.insert(*a, i);
                }
            }
        }
    }
    let mut blocks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        blocks.entry(root).or_default().push(i);
    }
    let mut budget = limits.max_nodes;
    for block in blocks.values_mut() {
        // Pivots of negative value first, then the largest: once only positive values remain, a
        // value at k or above ends the branch.
        block.sort_by(|a, b| {
            let (va, vb) = (ech.rows[*a].value, ech.rows[*b].value);
            let key = |v: Q| (v.positive(), if v.positive() { -(v.n / v.d) } else { v.n / v.d });
            key(va).cmp(&key(vb))
        });
        search_block(ech, block, &mut budget, target, visit)?;
    }
    Ok(())
}

fn search_block(
    ech: &Echelon,
    block: &[usize],
    budget: &mut u64,
    target: Option<(Q, Q)>,
    visit: Visitor<'_>,
) -> Result<(), Refusal> {
    let pivot_atom: Vec<u32> = block
        .iter()
        .map(|&i| ech.rows[i].entries.iter().find(|(a, _)| ech.pivot_of.get(a) == Some(&i)).map_or(0, |e| e.0))
        .collect();
    // Free atoms of the block, numbered locally.
    let mut local: HashMap<u32, usize> = HashMap::new();
    let mut free_atoms: Vec<u32> = Vec::new();
    let coefs: Vec<Vec<(usize, Q)>> = block
        .iter()
        .zip(&pivot_atom)
        .map(|(&i, &p)| {
            ech.rows[i]
                .entries
                .iter()
                .filter(|(a, _)| *a != p)
                .map(|(a, c)| {
                    let next = free_atoms.len();
                    let l = *local.entry(*a).or_insert(next);
                    if l == next {
                        free_atoms.push(*a);
                    }
                    (l, *c)
                })
                .collect()
        })
        .collect();
    let m = free_atoms.len();
    let mut rem_pos = vec![Q::ZERO; m];
    let mut rem_neg = vec![Q::ZERO; m];
    for cs in &coefs {
        for (f, c) in cs {
            if c.positive() {
                rem_pos[*f] = rem_pos[*f].add(*c)?;
            } else {
                rem_neg[*f] = rem_neg[*f].add(*c)?;
            }
        }
    }
    let values: Vec<Q> = block.iter().map(|&i| ech.rows[i].value).collect();
    // What the undecided pivots can still add to the value, from each depth on.
    let mut reach = vec![(Q::ZERO, Q::ZERO); values.len() + 1];
    for j in (0..values.len()).rev() {
        let (neg, pos) = reach[j + 1];
        let v = values[j];
        reach[j] = if v.positive() { (neg, pos.add(v)?) } else { (neg.add(v)?, pos) };
    }
    let mut state = Search {
        target,
        reach,
        value: Q::ZERO,
        coefs: &coefs,
        values: &values,
        pivot_atom: &pivot_atom,
        free_atoms: &free_atoms,
        sums: vec![Q::ZERO; m],
        rem_pos,
        rem_neg,
        chosen: Vec::new(),
        budget,
    };
    state.go(0, visit)
}

struct Search<'a> {
    target: Option<(Q, Q)>,
    reach: Vec<(Q, Q)>,
    value: Q,
    coefs: &'a [Vec<(usize, Q)>],
    values: &'a [Q],
    pivot_atom: &'a [u32],
    free_atoms: &'a [u32],
    sums: Vec<Q>,
    rem_pos: Vec<Q>,
    rem_neg: Vec<Q>,
    chosen: Vec<usize>,
    budget: &'a mut u64,
}

impl Search<'_> {
    fn go(&mut self, j: usize, visit: Visitor<'_>) -> Result<(), Refusal> {
        // Each node costs its pivot's coefficients.
        let cost = self.coefs.get(j).map_or(1, |c| c.len() as u64 + 1);
        *self.budget = self.budget.checked_sub(cost).ok_or(Refusal::TooComplex)?;
        if let Some((lo, hi)) = self.target {
            let (neg, pos) = self.reach[j];
            if self.value.add(pos)?.sub(lo)?.neg().positive() || self.value.add(neg)?.sub(hi)?.positive() {
                return Ok(());
            }
        }
        if j == self.coefs.len() {
            if self.chosen.is_empty() {
                return Ok(());
            }
            let mut set: Vec<u32> = self.chosen.iter().map(|&p| self.pivot_atom[p]).collect();
            for (f, s) in self.sums.iter().enumerate() {
                if *s == Q::ONE {
                    set.push(self.free_atoms[f]);
                } else if !s.is_zero() {
                    return Ok(());
                }
            }
            set.sort_unstable();
            return visit(&set, self.value);
        }
        // This pivot's coefficients leave the undecided pool.
        for (f, c) in &self.coefs[j] {
            if c.positive() {
                self.rem_pos[*f] = self.rem_pos[*f].sub(*c)?;
            } else {
                self.rem_neg[*f] = self.rem_neg[*f].sub(*c)?;
            }
        }
        let result = (|| {
            for take in [false, true] {
                if take {
                    for (f, c) in &self.coefs[j] {
                        self.sums[*f] = self.sums[*f].add(*c)?;
                    }
                    self.chosen.push(j);
                    self.value = self.value.add(self.values[j])?;
                }
                let mut feasible = true;
                for (f, _) in &self.coefs[j] {
                    let lo = self.sums[*f].add(self.rem_neg[*f])?;
                    let hi = self.sums[*f].add(self.rem_pos[*f])?;
                    if lo.sub(Q::ONE)?.positive() || hi.neg().positive() {
                        feasible = false;
                        break;
                    }
                }
                let out = if feasible { self.go(j + 1, visit) } else { Ok(()) };
                if take {
                    self.value = self.value.sub(self.values[j])?;
                    self.chosen.pop();
                    for (f, c) in &self.coefs[j] {
                        self.sums[*f] = self.sums[*f].sub(*c)?;
                    }
                }
                out?;
            }
            Ok::<(), Refusal>(())
        })();
        for (f, c) in &self.coefs[j] {
            if c.positive() {
                self.rem_pos[*f] = self.rem_pos[*f].add(*c)?;
            } else {
                self.rem_neg[*f] = self.rem_neg[*f].add(*c)?;
            }
        }
        result
    }
}

fn audit_rows(
    rows: &[&Release],
    first_new: usize,
    k: u32,
    topology: &Topology,
    limits: &Limits,
) -> Result<(), Refusal> {
    if rows.len() > limits.max_rows {
        return Err(Refusal::TooComplex);
    }
    let name = rows.get(first_new).map_or_else(String::new, |r| r.measure.clone());
    // Releases of different datasets never share a record.
    let mut by_dataset: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some((_, t)) = r.terms.first() {
            by_dataset.entry(t.dataset.as_str()).or_default().push(i);
        }
    }
    for idx in by_dataset.values() {
        let part: Vec<&Release> = idx.iter().map(|&i| rows[i]).collect();
        let new_from = idx.iter().position(|&i| i >= first_new).unwrap_or(idx.len());
        if new_from == idx.len() {
            continue;
        }
        audit_dataset(&part, new_from, k, topology, limits, &name)?;
    }
    Ok(())
}

/// Atoms that hold no record, as anyone can tell from the released counts: a count of 0 over atoms
/// whose coefficients all have one sign (counts are never negative), repeated until nothing changes
/// (an atom found empty may leave another zero row with coefficients of one sign). Dropping them
/// from every row keeps every determined set's value and can only add determined sets (those an
/// attacker finds with the same reasoning), so the audit stays exact for what it refuses, and the
/// search no longer branches over the empty remainders of answers.
fn known_empty(rows: &[Vec<(u32, i64)>], values: &[i64]) -> HashSet<u32> {
    let mut empty: HashSet<u32> = HashSet::new();
    let mut done = vec![false; rows.len()];
    loop {
        let mut changed = false;
        for (i, row) in rows.iter().enumerate() {
            if done[i] || values[i] != 0 {
                continue;
            }
            let live = row.iter().filter(|(a, _)| !empty.contains(a));
            let (mut pos, mut neg) = (false, false);
            for (_, c) in live.clone() {
                pos |= *c > 0;
                neg |= *c < 0;
            }
            if pos && neg {
                continue;
            }
            done[i] = true;
            let fresh: Vec<u32> = live.map(|(a, _)| *a).collect();
            changed |= !fresh.is_empty();
            empty.extend(fresh);
        }
        if !changed {
            return empty;
        }
    }
}

fn audit_dataset(
    rows: &[&Release],
    first_new: usize,
    k: u32,
    topology: &Topology,
    limits: &Limits,
    name: &str,
) -> Result<(), Refusal> {
    let mut sys = atoms_of(rows, topology, limits)?;
    let values: Vec<i64> = rows.iter().map(|r| r.count).collect();
    let empty = known_empty(&sys.rows, &values);
    if !empty.is_empty() {
        for row in &mut sys.rows {
            row.retain(|(a, _)| !empty.contains(a));
        }
    }
    // Counts.
    let mut counts = Echelon::new();
    for (i, r) in rows.iter().enumerate() {
        if let Inserted::Dependent(residual) = counts.insert(&sys.rows[i], r.count)?
            && i >= first_new
            && !residual.is_zero()
            && residual.n.abs() < i128::from(k) * residual.d
        {
            // The same records counted differently (the data changed): the change itself is small.
            return Err(Refusal::Small { measure: r.measure.clone() });
        }
    }
    let small = Some((Q::ONE, Q::int(i64::from(k) - 1)));
    // A small set the held releases already determined is no news (it was released before this audit
    // existed, or under other rules): only a set the new releases make determined is refused. The
    // echelon form of the held releases alone is built the first time a small set turns up.
    let mut held: Option<Echelon> = None;
    each_determined(&counts, limits, small, &mut |set, value| {
        if !value.small(k) {
            return Ok(());
        }
        if first_new > 0 {
            let held = match &mut held {
                Some(e) => e,
                None => {
                    let mut e = Echelon::new();
                    for (i, r) in rows.iter().enumerate().take(first_new) {
                        e.insert(&sys.rows[i], r.count)?;
                    }
                    held.insert(e)
                }
            };
            let w: Vec<(u32, Q)> = set.iter().map(|a| (*a, Q::ONE)).collect();
            if held.value_of(&w)?.is_some() {
                return Ok(());
            }
        }
        Err(Refusal::Small { measure: name.to_string() })
    })?;
    // Sums of money, one system per field.
    let fields: BTreeSet<&str> = rows.iter().filter_map(|r| r.money.as_ref().map(|(f, _)| f.as_str())).collect();
    for field in fields {
        let mut money = Echelon::new();
        let mut cells: Vec<BTreeSet<u32>> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            match &r.money {
                Some((f, sum)) if f == field => {
                    money.insert(&sys.rows[i], *sum)?;
                    cells.push(sys.rows[i].iter().filter(|(_, c)| *c > 0).map(|(a, _)| *a).collect());
                }
                None if r.is_zero() => {
                    money.insert(&sys.rows[i], 0)?;
                }
                _ => {}
            }
        }
        each_determined(&money, limits, None, &mut |set, _| {
            let s: BTreeSet<u32> = set.iter().copied().collect();
            let mut covered: BTreeSet<u32> = BTreeSet::new();
            for c in cells.iter().filter(|c| c.is_subset(&s)) {
                covered.extend(c.iter().copied());
            }
            if covered.len() == s.len() {
                return Ok(());
            }
            // What no released money cell covers must be known to hold no record.
            let rest: Vec<(u32, Q)> = s.difference(&covered).map(|a| (*a, Q::ONE)).collect();
            match counts.value_of(&rest)? {
                Some(v) if v.is_zero() => Ok(()),
                _ => Err(Refusal::Money { measure: name.to_string() }),
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

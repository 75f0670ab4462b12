//! The release ledger: which cells the gateway has already shown, so that a later query cannot be
//! subtracted from them to isolate fewer than k contributors (differencing and tracker attacks).
//!
//! A released cell is modelled exactly as the set of records it counts: a measure, a month range, and
//! for each record dimension the set of values allowed (absent = every value; division and instance are
//! rewritten as the case types they stand for), with its contributor count. A new cell is risky when,
//! with a released cell, one contains the other and their counts differ by 1..k−1, or when a container
//! minus a family of disjoint cells inside it (a total minus its released siblings) leaves 1..k−1.
//! Margins an answer implies (the sum of a whole line of shown cells) are released too. The ledger is
//! kept per agency or, by default, across all agencies (colluders pool their answers), and persisted as
//! an append-only JSON-lines file in the ledger directory, `fdatasync`ed before the answer is given.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::disclosure::{Partial, is_small};
use shuzhu_policy::indicator::measure;
use shuzhu_policy::period::Month;
use shuzhu_policy::schema::{TYPE_CODES, division_of, instance_of};

use crate::books::{BookHead, LineFile, open_lines};
use crate::query::ParsedQuery;

/// File name of the release ledger inside the gateway's ledger directory.
pub const RELEASES_FILE_NAME: &str = "releases.jsonl";

/// Why the release ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The file could not be read or written.
    #[error("release ledger i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A line of the file is not a released cell.
    #[error("release ledger line {0} is corrupt")]
    Corrupt(usize),
    /// The book's file could not be read, checked or written (see [`crate::books`]).
    #[error(transparent)]
    Book(#[from] crate::books::BookError),
}

/// One released cell: the set of records it counts and how many contributed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellSet {
    /// Measure id, e.g. `cases.closed`.
    pub measure: String,
    /// First month (index, inclusive).
    pub from: i32,
    /// Last month (index, inclusive).
    pub to: i32,
    /// Allowed values per record dimension (sorted); a dimension absent here is unrestricted.
    pub dims: BTreeMap<String, Vec<String>>,
    /// Contributors.
    pub count: u64,
}

impl CellSet {
    /// A cell over months `from..=to` with no dimension restricted.
    pub fn new(measure: &str, from: i32, to: i32, count: u64) -> Self {
        CellSet { measure: measure.into(), from, to, dims: BTreeMap::new(), count }
    }

    /// Restricts a dimension to `values` (intersecting with any earlier restriction). Division and
    /// instance are rewritten as case types so that they nest with type_code cells.
    pub fn restrict(&mut self, dim: Dimension, values: &[String]) {
        let (name, vals): (&str, Vec<String>) = match dim {
            Dimension::Division => (
                "type_code",
                TYPE_CODES
                    .iter()
                    .filter(|t| division_of(t).is_some_and(|d| values.iter().any(|v| v == d)))
                    .map(|t| t.to_string())
                    .collect(),
            ),
            Dimension::Instance => (
                "type_code",
                TYPE_CODES
                    .iter()
                    .filter(|t| instance_of(t).is_some_and(|d| values.iter().any(|v| v == d)))
                    .map(|t| t.to_string())
                    .collect(),
            ),
            other => (other.as_str(), values.to_vec()),
        };
        let mut vals = vals;
        vals.sort();
        vals.dedup();
        let slot = self.dims.entry(name.to_string()).or_insert_with(|| vals.clone());
        slot.retain(|v| vals.contains(v));
    }

    /// Restricts courts, and with them the regions those courts' cases lie in, where `court_region`
    /// knows every court asked (from the node configuration: a node serving one court and one
    /// region). The record set is unchanged; the region restriction lets court cells nest inside
    /// region cells.
    pub fn restrict_courts(&mut self, values: &[String], court_region: &BTreeMap<String, String>) {
        self.restrict(Dimension::Court, values);
        let regions: Option<Vec<String>> = values.iter().map(|c| court_region.get(c).cloned()).collect();
        if let Some(regions) = regions {
            self.restrict(Dimension::Region, &regions);
        }
    }

    fn period_inside(&self, other: &CellSet) -> bool {
        self.from >= other.from && self.to <= other.to
    }

    /// Whether every record this cell counts is counted by `other` too.
    pub fn inside(&self, other: &CellSet) -> bool {
        self.measure == other.measure
            && self.period_inside(other)
            && other
                .dims
                .iter()
                .all(|(d, allowed)| self.dims.get(d).is_some_and(|mine| mine.iter().all(|v| allowed.contains(v))))
    }

    /// Whether no record can be counted by both cells.
    pub fn disjoint(&self, other: &CellSet) -> bool {
        // Cases active in one month range may be active in another too, so only dated anchors split
        // records by period.
        let dated = measure(&self.measure).is_some_and(|m| !m.anchor.is_stock());
        let periods_apart = self.to < other.from || other.to < self.from;
        (dated && periods_apart)
            || self
                .dims
                .iter()
                .any(|(d, mine)| other.dims.get(d).is_some_and(|theirs| mine.iter().all(|v| !theirs.contains(v))))
    }
}

/// What makes a new cell risky, for the refusal message and the audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Risk {
    /// Measure of the risky cell.
    pub measure: String,
}

/// Numbers for the dimension names and values of one scope's cells, so that the search compares
/// integers instead of strings. Two strings get the same number exactly when they are equal.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        // Fewer than 2³² distinct names and values: the vocabulary of regions, courts, case types
        // and causes is a few thousand strings.
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.insert(s.to_owned(), id);
        id
    }
}

/// A cell as the search compares it: its measure is implied by the bucket it sits in, each
/// dimension name and value is a number of the scope's [`Interner`], the dimensions are sorted by
/// number and so are the values of each. A [`CellSet`]'s values are sorted and distinct (as
/// [`CellSet::restrict`] leaves them), so two cells' value lists are equal exactly when their packed
/// lists are, and the packed tests below decide exactly as [`CellSet::inside`] and
/// [`CellSet::disjoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Packed {
    from: i32,
    to: i32,
    count: u64,
    dims: Vec<(u32, Vec<u32>)>,
}

impl Packed {
    fn of(cell: &CellSet, names: &mut Interner) -> Packed {
        let mut dims: Vec<(u32, Vec<u32>)> = cell
            .dims
            .iter()
            .map(|(d, vals)| {
                let mut ids: Vec<u32> = vals.iter().map(|v| names.id(v)).collect();
                ids.sort_unstable();
                (names.id(d), ids)
            })
            .collect();
        dims.sort_unstable_by_key(|(d, _)| *d);
        Packed { from: cell.from, to: cell.to, count: cell.count, dims }
    }

    fn dim(&self, d: u32) -> Option<&[u32]> {
        self.dims.binary_search_by_key(&d, |(id, _)| *id).ok().map(|i| self.dims[i].1.as_slice())
    }

    /// [`CellSet::inside`] for two cells of one measure.
    fn inside(&self, other: &Packed) -> bool {
        self.from >= other.from
            && self.to <= other.to
            && other.dims.iter().all(|(d, allowed)| {
                self.dim(*d).is_some_and(|mine| mine.iter().all(|v| allowed.binary_search(v).is_ok()))
            })
    }

    /// [`CellSet::disjoint`] for two cells of one measure, `dated` when its anchor is not a stock.
    fn disjoint(&self, other: &Packed, dated: bool) -> bool {
        (dated && (self.to < other.from || other.to < self.from))
            || self.dims.iter().any(|(d, mine)| {
                other.dim(*d).is_some_and(|theirs| mine.iter().all(|v| theirs.binary_search(v).is_err()))
            })
    }

    /// Whether the two cells restrict the same dimensions to the same values, `axis` aside.
    fn same_dims_except(&self, other: &Packed, axis: u32) -> bool {
        self.dims.iter().filter(|(d, _)| *d != axis).eq(other.dims.iter().filter(|(d, _)| *d != axis))
    }
}

/// Whether a measure counts dated events (records of different periods are different records), as
/// opposed to a stock such as active cases. An unknown measure is treated as a stock.
fn is_dated(measure_id: &str) -> bool {
    measure(measure_id).is_some_and(|m| !m.anchor.is_stock())
}

/// The released cells of one measure in a scope.
struct Bucket {
    dated: bool,
    cells: Vec<Packed>,
}

/// Released cells indexed by measure, with the numbering of their names and values.
#[derive(Default)]
struct Index {
    names: Interner,
    by_measure: HashMap<String, Bucket>,
}

impl Index {
    fn push(&mut self, cell: &CellSet) {
        let packed = Packed::of(cell, &mut self.names);
        self.by_measure
            .entry(cell.measure.clone())
            .or_insert_with(|| Bucket { dated: is_dated(&cell.measure), cells: Vec::new() })
            .cells
            .push(packed);
    }

    /// Finds whether `new` cells, added to the released ones, let someone derive a count of 1..k−1:
    /// the first risky cell in `new`'s order. Every comparison is between cells of one measure.
    fn find_risk(&mut self, new: &[CellSet], k: u32) -> Option<Risk> {
        let packed: Vec<Packed> = new.iter().map(|c| Packed::of(c, &mut self.names)).collect();
        // Per measure: the released cells, then every new cell of the measure in order (each new cell
        // is compared with the others, itself excepted).
        let mut groups: HashMap<&str, (Vec<&Packed>, usize, bool)> = HashMap::new();
        let mut position: Vec<usize> = Vec::with_capacity(new.len());
        for (c, p) in new.iter().zip(&packed) {
            let (same, _, _) =
                groups.entry(c.measure.as_str()).or_insert_with(|| match self.by_measure.get(&c.measure) {
                    Some(b) => (b.cells.iter().collect(), b.cells.len(), b.dated),
                    None => (Vec::new(), 0, is_dated(&c.measure)),
                });
            position.push(same.len());
            same.push(p);
        }
        // What each container's packing runs over depends on the container only: kept per measure.
        let mut packings: HashMap<&str, Vec<Option<Vec<Vec<usize>>>>> = HashMap::new();
        for (c, n) in new.iter().zip(position) {
            let (same, released, dated) = &groups[c.measure.as_str()];
            let cache = packings.entry(c.measure.as_str()).or_insert_with(|| vec![None; same.len()]);
            if cell_is_risky(same, *released, n, *dated, k, cache) {
                return Some(Risk { measure: c.measure.clone() });
            }
        }
        None
    }
}

/// Finds whether `new` cells, added to `released`, let someone derive a count of 1..k−1.
pub fn find_risk(released: &[CellSet], new: &[CellSet], k: u32) -> Option<Risk> {
    let mut index = Index::default();
    for r in released {
        index.push(r);
    }
    index.find_risk(new, k)
}

/// Whether `same[n]` is risky, where `same` holds the released cells of its measure (the first
/// `released`) followed by the new ones (`same[n]` among them). `packings[x]` keeps the candidate lists
/// of container `same[x]` once made (see [`packings_of`]).
fn cell_is_risky(
    same: &[&Packed],
    released: usize,
    n: usize,
    dated: bool,
    k: u32,
    packings: &mut [Option<Vec<Vec<usize>>>],
) -> bool {
    let cell = same[n];
    for r in &same[..released] {
        if (cell.inside(r) || r.inside(cell)) && is_small(cell.count.abs_diff(r.count), k) {
            return true;
        }
    }
    // n as a container, and n as one of the siblings inside a container.
    let containers = std::iter::once(n).chain((0..same.len()).filter(|&x| x != n && cell.inside(same[x])));
    let mut family: Vec<usize> = Vec::new();
    for x in containers {
        let lists = packings[x].get_or_insert_with(|| packings_of(same, x));
        let seed = if x == n { None } else { Some(n) };
        if residual_small(same, x, seed, lists, dated, k, &mut family) {
            return true;
        }
    }
    false
}

/// An axis the greedy packing runs along.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Axis {
    /// Every inner cell.
    All,
    /// Cells of the container's dimensions over other months.
    Period,
    /// Cells of the container's months differing from it in this dimension only.
    Dim(u32),
}

/// For container `same[x]`, one candidate list per axis: the cells inside it (itself and its equals
/// excepted) over all of them and along each single axis (cells that differ from the container in one
/// dimension only), largest count first. Cells of equal counts keep their order (released first,
/// then new): the decision depends on which of them the greedy packing takes.
fn packings_of(same: &[&Packed], x: usize) -> Vec<Vec<usize>> {
    let container = same[x];
    let inner: Vec<usize> = (0..same.len()).filter(|&y| same[y].inside(container) && same[y] != container).collect();
    let mut axes: Vec<Axis> = vec![Axis::All, Axis::Period];
    axes.extend(inner.iter().flat_map(|&c| same[c].dims.iter().map(|(d, _)| Axis::Dim(*d))));
    axes.sort_unstable();
    axes.dedup();
    axes.into_iter()
        .map(|axis| {
            let mut candidates: Vec<usize> = inner
                .iter()
                .copied()
                .filter(|&c| {
                    let c = same[c];
                    match axis {
                        Axis::All => true,
                        Axis::Period => c.dims == container.dims,
                        Axis::Dim(a) => {
                            c.from == container.from && c.to == container.to && c.same_dims_except(container, a)
                        }
                    }
                })
                .collect();
            candidates.sort_by_key(|&c| std::cmp::Reverse(same[c].count));
            candidates
        })
        .collect()
}

/// Greedily packs disjoint cells of each candidate list (after `seed`) into `same[x]` and checks what
/// is left over. `family` is scratch space.
fn residual_small(
    same: &[&Packed],
    x: usize,
    seed: Option<usize>,
    lists: &[Vec<usize>],
    dated: bool,
    k: u32,
    family: &mut Vec<usize>,
) -> bool {
    let container = same[x];
    for candidates in lists {
        family.clear();
        family.extend(seed);
        for &c in candidates {
            if family.iter().all(|&f| same[f].disjoint(same[c], dated)) {
                family.push(c);
            }
        }
        if family.len() < 2 && seed.is_none() {
            // One inner cell is the pairwise case, checked already.
            continue;
        }
        let inside: u64 = family.iter().map(|&f| same[f].count).sum();
        if container.count >= inside && is_small(container.count - inside, k) && family.len() >= 2 {
            return true;
        }
    }
    false
}

/// Month indices `(first, last)` a time-dimension label covers (`2023`, `2023-Q2`, `2023-05`).
/// `None` for anything else: the gateway refuses a node answer whose time labels do not parse.
pub(crate) fn label_months(dim: Dimension, label: &str) -> Option<(i32, i32)> {
    let year: i32 = label.get(..4)?.parse().ok()?;
    let (a, b) = match dim {
        Dimension::Year => (1, 12),
        Dimension::Quarter => {
            let q: u32 = label.strip_prefix(&format!("{year}-Q"))?.parse().ok().filter(|q| (1..=4).contains(q))?;
            (3 * q - 2, 3 * q)
        }
        Dimension::Month => {
            let m = Month::parse(label).ok()?;
            (m.month(), m.month())
        }
        _ => return None,
    };
    Some((Month::new(year, a).ok()?.index(), Month::new(year, b).ok()?.index()))
}

/// The cells an answer releases: every shown cell, and every margin (a sum over one or more grouped
/// dimensions) whose whole line is shown, for each measure of the indicator. `answer` holds each
/// group's key, merged partials (in `measures` order) and whether it is shown; `margins` is false when
/// absent groups are not known to be empty (a node is missing).
pub fn cells_of_answer(
    q: &ParsedQuery,
    measures: &[&str],
    answer: &[(&Vec<String>, &Vec<Partial>, bool)],
    margins: bool,
    court_region: &BTreeMap<String, String>,
) -> Vec<CellSet> {
    let dims = &q.group_by;
    let mut out = Vec::new();
    let (from, to) = (q.period.from().index(), q.period.to().index());
    // The query's filters restrict every cell alike: apply them once.
    let mut filtered = CellSet::new("", from, to, 0);
    for (d, vals) in &q.filters {
        if *d == Dimension::Court {
            filtered.restrict_courts(vals, court_region);
        } else {
            filtered.restrict(*d, vals);
        }
    }
    let base = |m: &str, kept: &[(Dimension, &String)], count: u64| -> Option<CellSet> {
        let mut c = CellSet { measure: m.to_string(), count, ..filtered.clone() };
        for (d, v) in kept {
            if d.is_time() {
                let (a, b) = label_months(*d, v)?;
                c.from = c.from.max(a);
                c.to = c.to.min(b);
            } else {
                if *d == Dimension::Court {
                    c.restrict_courts(std::slice::from_ref(*v), court_region);
                } else if let Some(districts) =
                    q.region_members.get(*v).filter(|_| *d == Dimension::Region && q.region_level < 6)
                {
                    // A city or province is the set of its districts.
                    c.restrict(*d, districts);
                } else {
                    c.restrict(*d, std::slice::from_ref(*v));
                }
            }
        }
        Some(c)
    };
    // Every subset of the grouped dimensions to keep (all of them = the cells themselves).
    let n = dims.len();
    for mask in 0u32..(1 << n) {
        let kept_idx: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        if kept_idx.len() < n && !margins {
            continue;
        }
        let drops_time = (0..n).any(|i| mask & (1 << i) == 0 && dims[i].is_time());
        let mut lines: BTreeMap<Vec<&String>, (Vec<u64>, bool)> = BTreeMap::new();
        for (key, partials, ok) in answer {
            let k: Vec<&String> = kept_idx.iter().map(|&i| &key[i]).collect();
            let slot = lines.entry(k).or_insert_with(|| (vec![0; measures.len()], true));
            slot.1 &= *ok;
            for (s, p) in slot.0.iter_mut().zip(partials.iter()) {
                *s = s.saturating_add(p.contributors);
            }
        }
        for (k, (counts, all_shown)) in lines {
            if !all_shown {
                continue;
            }
            let kept: Vec<(Dimension, &String)> = kept_idx.iter().zip(k).map(|(&i, v)| (dims[i], v)).collect();
            for (m, count) in measures.iter().zip(counts) {
                // Active (or open-at-end) cases of different sub-periods overlap: their sum is no count of
                // anything.
                if drops_time && measure(m).is_some_and(|x| x.anchor.is_stock()) {
                    continue;
                }
                let Some((recorded, types)) = ledger_measure(m) else { continue };
                if let Some(mut c) = base(recorded, &kept, count) {
                    if let Some(types) = types {
                        c.restrict(Dimension::TypeCode, &types);
                    }
                    out.push(c);
                }
            }
        }
    }
    out
}

/// How the ledger records cells of measure `m`: `None` for public figures that count no one (population
/// totals); a count whose only condition is a set of case types as the same dated count without it,
/// restricted to those types (民初 filed = `cases.filed` with type_code 民初), so that it nests with
/// every other query of those records; any other measure as itself.
fn ledger_measure(m: &str) -> Option<(&str, Option<Vec<String>>)> {
    use shuzhu_policy::indicator::{Accumulate, Condition, measures};
    let Some(x) = measure(m) else { return Some((m, None)) };
    match (x.accumulate, x.condition) {
        (Accumulate::Total { .. }, _) => None,
        (Accumulate::Count, Condition::Cases { type_codes, closure_methods: [], flags: [] })
            if !type_codes.is_empty() && !x.anchor.is_stock() =>
        {
            let plain = measures().into_iter().find(|p| {
                p.dataset == x.dataset
                    && p.anchor == x.anchor
                    && p.condition == Condition::Any
                    && p.accumulate == Accumulate::Count
            });
            match plain {
                Some(p) => Some((p.id, Some(type_codes.iter().map(|t| t.to_string()).collect()))),
                None => Some((m, None)),
            }
        }
        _ => Some((m, None)),
    }
}

/// A cell read back from the book as new answers record it: lines written before typed counts were
/// recorded as their plain measure (`cases.closed_civil_first` rather than `cases.closed` with type_code
/// 民初) are rewritten the same way, so that the releases they stand for keep nesting with new cells.
/// Cells of measures the ledger no longer records (population totals) are kept as they are: no new
/// cell joins them, so they neither protect nor refuse anything.
fn as_recorded_now(mut cell: CellSet) -> CellSet {
    if let Some((recorded, Some(types))) = ledger_measure(&cell.measure)
        && recorded != cell.measure
    {
        cell.measure = recorded.to_string();
        cell.restrict(Dimension::TypeCode, &types);
    }
    cell
}

/// Released cells per scope (an agency, or `*` for everyone), durable in an append-only file. Cloning
/// shares the book (so a check can run on a blocking thread). Each scope has its own lock: checks of
/// different agencies (when the ledger is kept per agency) run side by side; the file has a lock of its
/// own, taken for one whole append.
#[derive(Clone)]
pub struct ReleaseBook {
    inner: Arc<BookInner>,
}

struct BookInner {
    across_agencies: bool,
    file: Option<Mutex<LineFile>>,
    scopes: Mutex<HashMap<String, Arc<Mutex<Scope>>>>,
}

/// One scope's released cells, indexed by measure for the search, with the set of them for the
/// repeat test.
#[derive(Default)]
struct Scope {
    index: Index,
    seen: HashSet<CellSet>,
}

impl Scope {
    fn push(&mut self, cell: CellSet) {
        if !self.seen.contains(&cell) {
            self.index.push(&cell);
            self.seen.insert(cell);
        }
    }

    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[derive(Serialize, Deserialize)]
struct Line {
    agency: String,
    cell: CellSet,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a check panicked; what it guards is only changed after the file
    // append succeeded, so it is whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReleaseBook {
    fn with(across_agencies: bool, file: Option<LineFile>, scopes: HashMap<String, Scope>) -> Self {
        let scopes = scopes.into_iter().map(|(k, v)| (k, Arc::new(Mutex::new(v)))).collect();
        ReleaseBook {
            inner: Arc::new(BookInner { across_agencies, file: file.map(Mutex::new), scopes: Mutex::new(scopes) }),
        }
    }

    /// A book kept only in memory (tests, tools).
    pub fn in_memory(across_agencies: bool) -> Self {
        Self::with(across_agencies, None, HashMap::new())
    }

    /// Opens (or creates) the book in `dir`, reading every earlier release.
    pub fn open(dir: &Path, across_agencies: bool) -> Result<Self, ReleaseError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(RELEASES_FILE_NAME);
        let scope = |agency: &str| if across_agencies { "*".to_string() } else { format!("agency:{agency}") };
        let mut scopes: HashMap<String, Scope> = HashMap::new();
        let (lines, file) = open_lines(&path)?;
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let l: Line = serde_json::from_str(line).map_err(|_| ReleaseError::Corrupt(i + 1))?;
            scopes.entry(scope(&l.agency)).or_default().push(as_recorded_now(l.cell));
        }
        Ok(Self::with(across_agencies, Some(file), scopes))
    }

    fn scope_name(&self, agency: &str) -> String {
        if self.inner.across_agencies { "*".into() } else { format!("agency:{agency}") }
    }

    /// The agency's scope, created empty when new.
    fn scope(&self, agency: &str) -> Arc<Mutex<Scope>> {
        let name = self.scope_name(agency);
        let mut scopes = lock(&self.inner.scopes);
        Arc::clone(scopes.entry(name).or_default())
    }

    /// Checks `new` against the agency's scope and, when safe, records it durably. Returns the risk
    /// (nothing recorded) when the cells would let someone derive a small count. Blocks on the file:
    /// call it off the async threads.
    ///
    /// When every new cell was already released in the scope with the same count (an identical
    /// repeat), nothing is searched or written: the answer shows nothing the scope has not seen.
    pub fn check_and_record(&self, agency: &str, new: Vec<CellSet>, k: u32) -> Result<Option<Risk>, ReleaseError> {
        let scope = self.scope(agency);
        let mut released = lock(&scope);
        let mut fresh: Vec<&CellSet> = Vec::new();
        let mut fresh_seen: HashSet<&CellSet> = HashSet::new();
        for c in &new {
            if !released.seen.contains(c) && fresh_seen.insert(c) {
                fresh.push(c);
            }
        }
        if fresh.is_empty() {
            return Ok(None);
        }
        if let Some(risk) = released.index.find_risk(&new, k) {
            return Ok(Some(risk));
        }
        if let Some(file) = &self.inner.file {
            let mut buf = Vec::new();
            for c in &fresh {
                let line = Line { agency: agency.to_string(), cell: (*c).clone() };
                // A struct of strings and integers always serialises.
                buf.extend(serde_json::to_vec(&line).map_err(|e| std::io::Error::other(e.to_string()))?);
                buf.push(b'\n');
            }
            lock(file).append(&buf)?;
        }
        let fresh: Vec<CellSet> = fresh.into_iter().cloned().collect();
        for c in fresh {
            released.push(c);
        }
        Ok(None)
    }

    /// The book's lines and chain head (see [`crate::books`]), when it is kept in a file.
    pub fn head(&self) -> Option<BookHead> {
        self.inner.file.as_ref().map(|f| lock(f).head())
    }

    /// How many cells a scope holds (for tests and diagnostics).
    pub fn len(&self, agency: &str) -> usize {
        let name = self.scope_name(agency);
        let scope = lock(&self.inner.scopes).get(&name).cloned();
        scope.map_or(0, |s| lock(&s).len())
    }

    /// Whether the scope holds no cell.
    pub fn is_empty(&self, agency: &str) -> bool {
        self.len(agency) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The search as it was before cells were packed and the ledger split by scope: the new path must
    // decide exactly as this one.
    /// Finds whether `new` cells, added to `released`, let someone derive a count of 1..k−1.
    fn reference_find_risk(released: &[CellSet], new: &[CellSet], k: u32) -> Option<Risk> {
        let mut by_measure: HashMap<&str, Vec<&CellSet>> = HashMap::new();
        for r in released {
            by_measure.entry(r.measure.as_str()).or_default().push(r);
        }
        reference_by_measure(|m| by_measure.get(m).map_or(&[][..], Vec::as_slice), new, k)
    }

    /// [`find_risk`] over released cells already indexed by measure: every comparison is between cells of
    /// one measure, so only `released_of(n.measure)` is searched for a new cell `n`.
    fn reference_by_measure<'a, R>(released_of: impl Fn(&str) -> &'a [R], new: &[CellSet], k: u32) -> Option<Risk>
    where
        R: std::borrow::Borrow<CellSet> + 'a,
    {
        // New cells by measure, in order, as references into `new` (identity matters below).
        let mut new_of: HashMap<&str, Vec<&CellSet>> = HashMap::new();
        for n in new {
            new_of.entry(n.measure.as_str()).or_default().push(n);
        }
        for n in new {
            let released: Vec<&CellSet> = released_of(&n.measure).iter().map(|r| r.borrow()).collect();
            let fresh = new_of.get(n.measure.as_str()).map_or(&[][..], Vec::as_slice);
            if reference_cell_is_risky(n, &released, fresh, k) {
                return Some(Risk { measure: n.measure.clone() });
            }
        }
        None
    }

    /// Whether `n` (one of `fresh`, the new cells of its measure) is risky against `released` (the
    /// released cells of its measure).
    fn reference_cell_is_risky(n: &CellSet, released: &[&CellSet], fresh: &[&CellSet], k: u32) -> bool {
        for r in released {
            if (n.inside(r) || r.inside(n)) && is_small(n.count.abs_diff(r.count), k) {
                return true;
            }
        }
        let same: Vec<&CellSet> = released.iter().chain(fresh.iter()).copied().collect();
        // n as a container, and n as one of the siblings inside a container.
        let containers: Vec<&CellSet> =
            std::iter::once(n).chain(same.iter().copied().filter(|x| n.inside(x) && !std::ptr::eq(*x, n))).collect();
        for x in containers {
            let inner: Vec<&CellSet> =
                same.iter().copied().filter(|y| y.inside(x) && !std::ptr::eq(*y, x) && *y != x).collect();
            let seed: Vec<&CellSet> = if std::ptr::eq(x, n) { Vec::new() } else { vec![n] };
            if reference_residual_small(x, &seed, &inner, k) {
                return true;
            }
        }
        false
    }

    /// Greedily packs disjoint cells of `inner` (after `seed`) into `x` and checks what is left over, both
    /// over all of them and along each single axis (cells that differ from `x` in one dimension only).
    fn reference_residual_small(x: &CellSet, seed: &[&CellSet], inner: &[&CellSet], k: u32) -> bool {
        let mut axes: Vec<Option<String>> = vec![None, Some("period".into())];
        axes.extend(inner.iter().flat_map(|c| c.dims.keys().cloned()).map(Some));
        axes.sort();
        axes.dedup();
        for axis in axes {
            let mut family: Vec<&CellSet> = seed.to_vec();
            let mut candidates: Vec<&CellSet> = inner
                .iter()
                .copied()
                .filter(|c| match &axis {
                    None => true,
                    Some(a) if a == "period" => c.dims == x.dims,
                    Some(a) => {
                        c.from == x.from
                            && c.to == x.to
                            && c.dims.iter().filter(|(d, _)| *d != a).all(|(d, v)| x.dims.get(d) == Some(v))
                            && x.dims.iter().filter(|(d, _)| *d != a).all(|(d, v)| c.dims.get(d) == Some(v))
                    }
                })
                .collect();
            candidates.sort_by_key(|c| std::cmp::Reverse(c.count));
            for c in candidates {
                if family.iter().all(|f| f.disjoint(c)) {
                    family.push(c);
                }
            }
            if family.len() < 2 && seed.is_empty() {
                // One inner cell is the pairwise case, checked already.
                continue;
            }
            let inside: u64 = family.iter().map(|f| f.count).sum();
            if x.count >= inside && is_small(x.count - inside, k) && family.len() >= 2 {
                return true;
            }
        }
        false
    }

    fn cell(measure: &str, from: i32, to: i32, dims: &[(Dimension, &[&str])], count: u64) -> CellSet {
        let mut c = CellSet::new(measure, from, to, count);
        for (d, v) in dims {
            c.restrict(*d, &v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        c
    }

    #[test]
    fn a_rate_per_population_records_its_count_as_typed_filings_and_no_population() {
        let ind = shuzhu_policy::indicator::indicator("litigation_per_10k").unwrap();
        let period = shuzhu_policy::period::Period::from_wire(202301, 202303).unwrap();
        let q = ParsedQuery {
            indicator: ind,
            group_by: vec![Dimension::Region],
            period,
            filters: vec![],
            purpose: "诉源治理".into(),
            region_level: 6,
            region_members: BTreeMap::new(),
        };
        let measures = ind.measures();
        let key = vec!["350203".to_string()];
        let partials = vec![
            Partial { value: 120, contributors: 120, max_single: 1 },
            Partial { value: 1_400_000, contributors: 1, max_single: 1_400_000 },
        ];
        let cells = cells_of_answer(&q, &measures, &[(&key, &partials, true)], true, &BTreeMap::new());
        // The cell and its margin; both are 民初 filings, none is a population figure.
        assert_eq!(cells.len(), 2, "{cells:?}");
        for c in &cells {
            assert_eq!((c.measure.as_str(), c.count), ("cases.filed", 120));
            assert_eq!(c.dims["type_code"], vec!["民初".to_string()]);
        }
        // `filed` of 民初 in the region over one month less, 3 cases fewer: a period tracker.
        let (jan, feb) = (period.from().index(), period.from().index() + 1);
        let typed: &[(Dimension, &[&str])] = &[(Dimension::Region, &["350203"]), (Dimension::TypeCode, &["民初"])];
        assert!(find_risk(&cells, &[cell("cases.filed", jan, feb, typed, 117)], 10).is_some());
        assert!(find_risk(&cells, &[cell("cases.filed", jan, feb, typed, 80)], 10).is_none());
        // Other measures keep their own names.
        assert_eq!(ledger_measure("cases.closed_on_time"), Some(("cases.closed_on_time", None)));
        assert_eq!(ledger_measure("population.resident_and_floating"), None);
    }

    #[test]
    fn releases_recorded_before_typed_counts_were_rewritten_still_protect() {
        // Before typed counts were recorded as their plain measure, 民初 closures were kept under their
        // own name. A book written then must still refuse a nested query asked after the upgrade.
        assert_eq!(ledger_measure("cases.closed_civil_first"), Some(("cases.closed", Some(vec!["民初".to_string()]))));
        let period = shuzhu_policy::period::Period::from_wire(202401, 202403).unwrap();
        let (jan, feb, mar) = (period.from().index(), period.from().index() + 1, period.to().index());
        let dir = tempfile::tempdir().unwrap();
        let old = serde_json::json!({
            "agency": "a",
            "cell": {
                "measure": "cases.closed_civil_first",
                "from": jan,
                "to": mar,
                "dims": { "region": ["350203"] },
                "count": 120,
            },
        });
        std::fs::write(dir.path().join(RELEASES_FILE_NAME), format!("{old}\n")).unwrap();
        let book = ReleaseBook::open(dir.path(), true).unwrap();
        assert_eq!(book.len("a"), 1);
        // 2024-01..02 of the same closures, 3 fewer: the 3 closed in March would be revealed.
        let typed: &[(Dimension, &[&str])] = &[(Dimension::Region, &["350203"]), (Dimension::TypeCode, &["民初"])];
        let risk = book.check_and_record("b", vec![cell("cases.closed", jan, feb, typed, 117)], 10).unwrap();
        assert_eq!(risk.map(|r| r.measure), Some("cases.closed".to_string()));
        // A difference of k or more reveals no small count and is recorded.
        assert!(book.check_and_record("b", vec![cell("cases.closed", jan, feb, typed, 100)], 10).unwrap().is_none());
        assert_eq!(book.len("b"), 2);
    }

    #[test]
    fn period_tracker_is_caught() {
        let jan_mar = cell("cases.filed", 0, 2, &[], 120);
        let jan_feb = cell("cases.filed", 0, 1, &[], 117);
        assert!(find_risk(std::slice::from_ref(&jan_mar), std::slice::from_ref(&jan_feb), 10).is_some());
        let far = cell("cases.filed", 0, 1, &[], 80);
        assert!(find_risk(&[jan_mar], &[far], 10).is_none());
    }

    #[test]
    fn total_minus_siblings_is_caught() {
        let total = cell("cases.filed", 0, 11, &[], 100);
        let a = cell("cases.filed", 0, 11, &[(Dimension::Region, &["1"])], 50);
        let b = cell("cases.filed", 0, 11, &[(Dimension::Region, &["2"])], 47);
        assert!(find_risk(&[total.clone(), a.clone()], std::slice::from_ref(&b), 10).is_some());
        assert!(find_risk(&[a, b], &[total], 10).is_some());
    }

    #[test]
    fn division_nests_with_type_codes() {
        let civil = cell("cases.filed", 0, 11, &[(Dimension::Division, &["民事"])], 40);
        let first = cell("cases.filed", 0, 11, &[(Dimension::TypeCode, &["民初", "民终", "民申"])], 37);
        assert!(first.inside(&civil));
        assert!(find_risk(&[civil], &[first], 10).is_some());
    }

    fn parsed(group_by: Vec<Dimension>, filters: Vec<(Dimension, Vec<String>)>) -> ParsedQuery {
        ParsedQuery {
            region_level: 6,
            region_members: BTreeMap::new(),
            indicator: shuzhu_policy::indicator::indicator("closure_rate").unwrap(),
            group_by,
            period: shuzhu_policy::period::Period::from_wire(202401, 202406).unwrap(),
            filters,
            purpose: "诉源治理".into(),
        }
    }

    fn part(n: u64) -> Partial {
        Partial { value: n as i64, contributors: n, max_single: 1 }
    }

    #[test]
    fn an_answer_releases_its_cells_and_the_margins_of_whole_shown_lines() {
        let q = parsed(vec![Dimension::Region, Dimension::Quarter], vec![(Dimension::Division, vec!["民事".into()])]);
        let measures = ["cases.closed", "cases.active"];
        let keys: Vec<Vec<String>> = [["1", "2024-Q1"], ["1", "2024-Q2"], ["2", "2024-Q1"], ["2", "2024-Q2"]]
            .iter()
            .map(|k| k.iter().map(|s| s.to_string()).collect())
            .collect();
        let parts: Vec<Vec<Partial>> = (0..4).map(|i| vec![part(10 + i), part(100 + i)]).collect();
        // Region 2, Q2 is suppressed: no margin through it.
        let shown = [true, true, true, false];
        let answer: Vec<(&Vec<String>, &Vec<Partial>, bool)> =
            keys.iter().zip(&parts).zip(shown).map(|((k, p), s)| (k, p, s)).collect();
        let cells = cells_of_answer(&q, &measures, &answer, true, &BTreeMap::new());
        let closed: Vec<&CellSet> = cells.iter().filter(|c| c.measure == "cases.closed").collect();
        // 3 shown cells, region 1 over both quarters (10 + 11), Q1 over both regions (10 + 12).
        let counts: Vec<u64> = closed.iter().map(|c| c.count).collect();
        assert!(counts.contains(&21) && counts.contains(&22), "{counts:?}");
        assert!(!counts.contains(&(10 + 11 + 12 + 13)), "no grand total through a suppressed cell");
        let q1 = closed.iter().find(|c| c.count == 10).unwrap();
        assert_eq!((q1.from, q1.to), (Month::new(2024, 1).unwrap().index(), Month::new(2024, 3).unwrap().index()));
        assert_eq!(q1.dims["type_code"], vec!["民再", "民初", "民申", "民终"]);
        assert_eq!(q1.dims["region"], vec!["1"]);
        // Active cases of different quarters overlap: no margin across quarters for them.
        let active: Vec<u64> = cells.iter().filter(|c| c.measure == "cases.active").map(|c| c.count).collect();
        assert!(!active.contains(&(100 + 101)), "{active:?}");
        assert!(active.contains(&(100 + 102)), "a margin across regions is a sum for active cases too");
        // With a node missing, only the cells themselves.
        assert_eq!(cells_of_answer(&q, &measures, &answer, false, &BTreeMap::new()).len(), 6);
    }

    #[test]
    fn a_city_is_the_set_of_its_districts() {
        let mut q = parsed(vec![Dimension::Region], vec![]);
        q.region_level = 4;
        q.region_members = [("350200".to_string(), vec!["350203".to_string(), "350206".to_string()])].into();
        let key = vec!["350200".to_string()];
        let parts = vec![part(103), part(300)];
        let answer = vec![(&key, &parts, true)];
        let cells = cells_of_answer(&q, &["cases.closed", "cases.active"], &answer, true, &BTreeMap::new());
        let city = cells.iter().find(|c| c.measure == "cases.closed" && c.dims.contains_key("region")).unwrap();
        assert_eq!(city.dims["region"], vec!["350203", "350206"]);
        // A district released earlier: the city minus it would reveal 3 cases of the other district.
        let district = cell("cases.closed", city.from, city.to, &[(Dimension::Region, &["350203"])], 100);
        assert!(district.inside(city));
        assert!(find_risk(&[district], std::slice::from_ref(city), 10).is_some());
    }

    #[test]
    fn a_court_nests_in_its_region() {
        let map: BTreeMap<String, String> = [("闽0203".to_string(), "350203".to_string())].into();
        let mut court = CellSet::new("cases.filed", 0, 11, 95);
        court.restrict_courts(&["闽0203".to_string()], &map);
        let region = cell("cases.filed", 0, 11, &[(Dimension::Region, &["350203"])], 100);
        assert!(court.inside(&region));
        assert!(find_risk(&[region], &[court.clone()], 10).is_some());
        let mut unknown = CellSet::new("cases.filed", 0, 11, 95);
        unknown.restrict_courts(&["闽0203".to_string(), "闽9999".to_string()], &map);
        assert!(!unknown.dims.contains_key("region"), "a court with no known region adds no region");
    }

    #[test]
    fn active_cases_of_different_months_are_not_disjoint() {
        let a = cell("cases.active", 0, 0, &[], 10);
        let b = cell("cases.active", 1, 1, &[], 10);
        assert!(!a.disjoint(&b));
        let a = cell("cases.filed", 0, 0, &[], 10);
        let b = cell("cases.filed", 1, 1, &[], 10);
        assert!(a.disjoint(&b));
    }

    #[test]
    fn the_book_survives_reopening_and_scopes_agencies() {
        let dir = tempfile::tempdir().unwrap();
        let book = ReleaseBook::open(dir.path(), false).unwrap();
        assert!(book.check_and_record("a", vec![cell("cases.filed", 0, 2, &[], 120)], 10).unwrap().is_none());
        drop(book);
        let book = ReleaseBook::open(dir.path(), false).unwrap();
        assert_eq!(book.len("a"), 1);
        assert!(book.check_and_record("a", vec![cell("cases.filed", 0, 1, &[], 115)], 10).unwrap().is_some());
        assert!(book.check_and_record("b", vec![cell("cases.filed", 0, 1, &[], 115)], 10).unwrap().is_none());
        drop(book);
        let across = ReleaseBook::open(dir.path(), true).unwrap();
        assert_eq!(across.len("anyone"), 2, "every agency's releases are pooled");
        let dir = tempfile::tempdir().unwrap();
        let across = ReleaseBook::open(dir.path(), true).unwrap();
        assert!(across.check_and_record("b", vec![cell("cases.filed", 0, 2, &[], 120)], 10).unwrap().is_none());
        assert!(across.check_and_record("c", vec![cell("cases.filed", 0, 1, &[], 112)], 10).unwrap().is_some());
    }

    #[test]
    fn an_identical_repeat_is_allowed_and_writes_nothing_and_differencing_after_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RELEASES_FILE_NAME);
        let book = ReleaseBook::open(dir.path(), true).unwrap();
        // Total and one region of it in one answer: both shown, together they leave 50 for the rest.
        let answer = vec![
            cell("cases.filed", 0, 11, &[], 100),
            cell("cases.filed", 0, 11, &[(Dimension::Region, &["1"])], 50),
            cell("cases.closed", 0, 11, &[], 80),
        ];
        assert!(book.check_and_record("a", answer.clone(), 10).unwrap().is_none());
        let written = std::fs::metadata(&path).unwrap().len();
        assert!(written > 0);
        assert_eq!(book.len("a"), 3);
        // The same answer again, from another agency of the pooled scope, and in another order.
        assert!(book.check_and_record("b", answer.clone(), 10).unwrap().is_none());
        let mut reordered = answer.clone();
        reordered.reverse();
        reordered.push(answer[0].clone());
        assert!(book.check_and_record("a", reordered, 10).unwrap().is_none());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), written, "a repeat writes nothing");
        assert_eq!(book.len("a"), 3);
        // A subset of an earlier answer is a repeat too.
        assert!(book.check_and_record("a", vec![answer[2].clone()], 10).unwrap().is_none());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), written);
        // The same cell with another count is no repeat: it differs from the released one by 3.
        let recount = cell("cases.filed", 0, 11, &[], 103);
        assert!(book.check_and_record("a", vec![recount], 10).unwrap().is_some());
        // Region 2 beside the released total and region 1: 100 − 50 − 47 = 3 is refused.
        let sibling = cell("cases.filed", 0, 11, &[(Dimension::Region, &["2"])], 47);
        assert!(book.check_and_record("a", vec![sibling], 10).unwrap().is_some());
        // A repeat bundled with a differencing cell is refused whole, and nothing is written.
        let mut bundled = answer.clone();
        bundled.push(cell("cases.filed", 0, 10, &[], 98));
        assert!(book.check_and_record("a", bundled, 10).unwrap().is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), written, "a refusal writes nothing");
        // A fresh safe cell is still written, once.
        assert!(book.check_and_record("a", vec![cell("cases.filed", 12, 23, &[], 300)], 10).unwrap().is_none());
        assert!(std::fs::metadata(&path).unwrap().len() > written);
        drop(book);
        let book = ReleaseBook::open(dir.path(), true).unwrap();
        assert_eq!(book.len("a"), 4, "the repeats added no line");
    }

    #[test]
    fn the_packed_search_finds_what_the_reference_finds() {
        let released = vec![
            cell("cases.closed", 0, 11, &[], 100),
            cell("cases.filed", 0, 11, &[], 100),
            cell("cases.filed", 0, 11, &[(Dimension::Region, &["1"])], 50),
        ];
        let cases: Vec<Vec<CellSet>> = vec![
            vec![cell("cases.filed", 0, 11, &[(Dimension::Region, &["2"])], 47)],
            vec![cell("cases.closed", 0, 11, &[(Dimension::Region, &["2"])], 47)],
            vec![cell("cases.closed", 0, 10, &[], 95), cell("cases.filed", 0, 10, &[], 95)],
            vec![cell("cases.closed", 0, 10, &[], 60), cell("cases.filed", 0, 10, &[], 60)],
        ];
        let expected = [Some("cases.filed"), None, Some("cases.closed"), None];
        for (new, want) in cases.iter().zip(expected) {
            let reference = reference_find_risk(&released, new, 10).map(|r| r.measure);
            assert_eq!(reference.as_deref(), want);
            assert_eq!(find_risk(&released, new, 10).map(|r| r.measure), reference);
        }
    }

    /// Times the packed search against the reference on a fresh answer (no refusal, so every cell is
    /// searched in full) and checks that they agree. Run by hand, optimised:
    /// `cargo test --profile bench -p shuzhu-gateway --lib search_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn search_cost() {
        let answer_cells =
            |group_by: Vec<Dimension>, filters, months: (u32, u32), keys: Vec<Vec<String>>, base: u64| {
                let mut q = parsed(group_by, filters);
                q.period = shuzhu_policy::period::Period::from_wire(months.0, months.1).unwrap();
                let parts: Vec<Vec<Partial>> =
                    (0..keys.len() as u64).map(|i| vec![part(base + 7 * i), part(3 * base + 11 * i)]).collect();
                let answer: Vec<(&Vec<String>, &Vec<Partial>, bool)> =
                    keys.iter().zip(&parts).map(|(k, p)| (k, p, true)).collect();
                cells_of_answer(&q, &["cases.closed", "cases.active"], &answer, true, &BTreeMap::new())
            };
        let regions: Vec<String> = (0..32).map(|r| format!("3502{r:02}")).collect();
        let years: Vec<String> = (2019..=2024).map(|y| y.to_string()).collect();
        let quarters: Vec<String> = (1..=4).map(|q| format!("2024-Q{q}")).collect();
        let cross = |a: &[String], b: &[String]| -> Vec<Vec<String>> {
            a.iter().flat_map(|x| b.iter().map(move |y| vec![x.clone(), y.clone()])).collect()
        };
        let by_year = answer_cells(
            vec![Dimension::Region, Dimension::Year],
            vec![],
            (201901, 202412),
            cross(&regions, &years),
            1000,
        );
        let by_quarter = answer_cells(
            vec![Dimension::Region, Dimension::Quarter],
            vec![(Dimension::Division, vec!["民事".into()])],
            (202401, 202412),
            cross(&regions, &quarters),
            400,
        );
        let time = |f: &dyn Fn() -> Option<Risk>| {
            let mut best = std::time::Duration::MAX;
            let mut out = None;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                out = f();
                best = best.min(t.elapsed());
            }
            (best, out)
        };
        let (old, old_risk) = time(&|| reference_find_risk(&by_year, &by_quarter, 10));
        let (new, new_risk) = time(&|| find_risk(&by_year, &by_quarter, 10));
        assert_eq!(old_risk, new_risk);
        println!(
            "{} released cells, {} new: reference {:?}, packed {:?} ({:.1}×), decision {:?}",
            by_year.len(),
            by_quarter.len(),
            old,
            new,
            old.as_secs_f64() / new.as_secs_f64(),
            new_risk
        );
    }

    /// The book as it decided before: one list of released cells per scope, the reference search.
    #[derive(Default)]
    struct ReferenceBook {
        scopes: HashMap<String, (Vec<CellSet>, HashSet<CellSet>)>,
    }

    impl ReferenceBook {
        fn check_and_record(&mut self, scope: &str, new: Vec<CellSet>, k: u32) -> Option<Risk> {
            let (released, seen) = self.scopes.entry(scope.to_string()).or_default();
            let fresh: Vec<CellSet> = {
                let mut out: Vec<CellSet> = Vec::new();
                for c in &new {
                    if !seen.contains(c) && !out.contains(c) {
                        out.push(c.clone());
                    }
                }
                out
            };
            if fresh.is_empty() {
                return None;
            }
            if let Some(risk) = reference_find_risk(released, &new, k) {
                return Some(risk);
            }
            for c in fresh {
                if seen.insert(c.clone()) {
                    released.push(c);
                }
            }
            None
        }
    }

    mod equivalence {
        use super::*;
        use proptest::prelude::*;

        /// A cell over a small vocabulary, so that nesting, disjointness and small differences are
        /// frequent; built through `restrict`, as every cell of an answer is.
        fn arb_cell() -> impl Strategy<Value = CellSet> {
            let measure = prop::sample::select(vec!["cases.filed", "cases.active", "cases.closed"]);
            let period = (0i32..4, 0i32..3).prop_map(|(from, len)| (from, from + len));
            let values = |pool: &'static [&'static str]| {
                prop::option::of(prop::sample::subsequence(pool.to_vec(), 1..=pool.len()))
            };
            (
                measure,
                period,
                values(&["1", "2", "3"]),
                values(&["民初", "民终", "刑初"]),
                prop::option::of(prop::sample::select(vec!["民事", "刑事"])),
                prop_oneof![0u64..40, 40u64..120],
            )
                .prop_map(|(m, (from, to), region, types, division, count)| {
                    let mut c = CellSet::new(m, from, to, count);
                    let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
                    if let Some(r) = region {
                        c.restrict(Dimension::Region, &owned(r));
                    }
                    if let Some(t) = types {
                        c.restrict(Dimension::TypeCode, &owned(t));
                    }
                    if let Some(d) = division {
                        c.restrict(Dimension::Division, &owned(vec![d]));
                    }
                    c
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

            #[test]
            fn the_search_decides_as_the_reference(
                released in prop::collection::vec(arb_cell(), 0..12),
                new in prop::collection::vec(arb_cell(), 1..8),
                k in 5u32..12,
            ) {
                prop_assert_eq!(find_risk(&released, &new, k), reference_find_risk(&released, &new, k));
            }

            #[test]
            fn the_book_decides_as_the_reference_book(
                batches in prop::collection::vec(
                    (prop::sample::select(vec!["a", "b"]), prop::collection::vec(arb_cell(), 1..6)),
                    1..10,
                ),
                across in any::<bool>(),
            ) {
                let book = ReleaseBook::in_memory(across);
                let mut reference = ReferenceBook::default();
                for (agency, new) in batches {
                    let scope = if across { "*" } else { agency };
                    let want = reference.check_and_record(scope, new.clone(), 10);
                    let got = book.check_and_record(agency, new, 10).unwrap();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(book.len(agency), reference.scopes[scope].1.len());
                }
            }
        }
    }
}

#[cfg(test)]
mod line_file_tests {
    use super::*;

    #[test]
    fn time_labels_out_of_range_do_not_parse() {
        assert_eq!(label_months(Dimension::Quarter, "2024-Q0"), None);
        assert_eq!(label_months(Dimension::Quarter, "2024-Q5"), None);
        assert_eq!(label_months(Dimension::Month, "2024-13"), None);
        assert!(label_months(Dimension::Quarter, "2024-Q4").is_some());
    }
}

//! What the patch carries: a walk over the references of the fixed build's
//! code from the replaced functions. A function is carried when its code
//! changed since the base build, when it is new, or when the host lacks it;
//! a static only when the host lacks it (a new static); constants without a
//! name always (they are read-only copies). Everything else the walk meets
//! is left to the host, by name: its functions, statics, thread-locals,
//! std, tokio and the rest. A new thread-local, or a symbol found nowhere, is
//! refused by name.

use super::diff::{same_code, stable_name};
use super::eh_frame::{self, EhFrame};
use super::objects::{Build, Rel};
use hotfix_core::linked::host_symbols::{HostKind, HostSymbols};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// Which build a section comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// The fixed crate.
    Fixed,
    /// A dependency's or the standard library's archive.
    Dep,
}

/// A section of an input object: origin, unit, section index.
pub type Key = (Origin, usize, usize);

/// The outcome of the walk.
#[derive(Debug, Default)]
pub struct Selection {
    /// Carried sections, in the order the walk met them.
    pub carried: Vec<Key>,
    /// Why each carried function is in the patch.
    pub why: HashMap<Key, String>,
    /// The carried section that defines each carried name.
    pub by_name: HashMap<String, Key>,
    /// Names left to the host.
    pub externs: BTreeSet<String>,
    /// Names of the fixed build that stand for another name of the host:
    /// items `#[patchable]` generates beside a function that a longer fix
    /// above it moved (their names hash the function's place).
    pub renames: std::collections::BTreeMap<String, String>,
    /// FDEs carried: origin, unit, offset in its `.eh_frame`.
    pub fdes: Vec<(Origin, usize, u64)>,
    /// Names neither the host nor the inputs define.
    pub missing: BTreeSet<String>,
    /// Refusals, one line each.
    pub refusals: Vec<String>,
}

/// The inputs of the walk.
pub struct Inputs<'a> {
    pub fixed: &'a Build,
    pub base: &'a Build,
    /// Dependencies' and std's objects, searched for what the host lacks.
    pub deps: Option<&'a Build>,
    pub host: &'a HostSymbols,
    /// Whether the host's process can resolve a name from its libraries.
    pub imported: &'a dyn Fn(&str) -> bool,
}

struct Walk<'a> {
    inp: &'a Inputs<'a>,
    roots: HashSet<String>,
    out: Selection,
    carried: HashSet<Key>,
    queue: VecDeque<Key>,
    eh: HashMap<(Origin, usize), Option<EhFrame>>,
    /// The host's generated items by their name without the place's hash
    /// (`None`: several share it).
    generated: HashMap<String, Option<String>>,
    /// For functions of the fixed build: the changed function each reaches
    /// (`None`: none, or the walk is in progress).
    reach: HashMap<String, Option<String>>,
    /// For functions of the fixed build: why each differs from the base
    /// build's (`None`: it does not), computed once.
    changes: HashMap<String, Option<String>>,
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Walks from `roots` (symbols of the fixed build).
pub fn select(inp: &Inputs<'_>, roots: &[String]) -> Selection {
    let mut w = Walk {
        inp,
        roots: roots.iter().cloned().collect(),
        out: Selection::default(),
        carried: HashSet::new(),
        queue: VecDeque::new(),
        eh: HashMap::new(),
        generated: HashMap::new(),
        reach: HashMap::new(),
        changes: HashMap::new(),
    };
    for n in inp.base.defined.keys() {
        if inp.host.lookup(n).is_empty() {
            continue;
        }
        if let std::borrow::Cow::Owned(stable) = stable_name(n) {
            // Two methods of one name in one module share a stable name:
            // such a name stands for neither.
            w.generated
                .entry(stable)
                .and_modify(|v| *v = None)
                .or_insert_with(|| Some(n.clone()));
        }
    }
    for r in roots {
        match inp.fixed.defined.get(r) {
            Some(&(u, s)) => match inp.fixed.units[u].symbols[s].section {
                Some(sec) => w.carry((Origin::Fixed, u, sec), "its source changed".into()),
                None => w.out.refusals.push(format!("{}: not defined", demangle(r))),
            },
            None => w.out.refusals.push(format!(
                "{}: the fixed build has no such function",
                demangle(r)
            )),
        }
    }
    while let Some(key) = w.queue.pop_front() {
        w.visit(key);
    }
    w.out
}

impl<'a> Inputs<'a> {
    /// The build of an origin.
    pub fn build(&self, o: Origin) -> &'a Build {
        match o {
            Origin::Fixed => self.fixed,
            Origin::Dep => self.deps.expect("a Dep key exists only with deps"),
        }
    }
}

impl<'a> Walk<'a> {
    fn build(&self, o: Origin) -> &'a Build {
        self.inp.build(o)
    }

    fn carry(&mut self, key: Key, why: String) {
        if !self.carried.insert(key) {
            return;
        }
        let unit = &self.build(key.0).units[key.1];
        for s in unit.symbols.iter().filter(|s| s.section == Some(key.2)) {
            // Only a name that says which symbol it is stands for one carried
            // copy; local labels (`GCC_except_table0`) are per object.
            let unique = s.global || hotfix_core::linked::is_rust_symbol(&s.name);
            if !s.name.is_empty() && !s.is_section && unique {
                self.out.by_name.entry(s.name.clone()).or_insert(key);
            }
        }
        self.out.carried.push(key);
        self.out.why.insert(key, why);
        self.queue.push_back(key);
    }

    fn visit(&mut self, key: Key) {
        let (o, u, s) = key;
        let relocs = self.build(o).units[u].sections[s].relocs.clone();
        for r in &relocs {
            self.reference(o, u, r);
        }
        if !self.build(o).units[u].sections[s].code() {
            return;
        }
        // Its unwind information, and what that refers to.
        let build = self.build(o);
        let eh = self
            .eh
            .entry((o, u))
            .or_insert_with(|| eh_frame::index(&build.units[u]));
        let Some(eh) = eh else { return };
        let Some(&fde) = eh.fde_of.get(&s) else {
            return;
        };
        let rec = eh.records[&fde];
        let cie = rec.cie.and_then(|c| eh.records.get(&c).copied());
        let ehs = eh.section;
        self.out.fdes.push((o, u, fde));
        let in_record = |r: &Rel, rec: &eh_frame::Record| {
            r.offset >= rec.offset && r.offset < rec.offset + rec.len
        };
        let relocs: Vec<Rel> = self.build(o).units[u].sections[ehs]
            .relocs
            .iter()
            .filter(|r| in_record(r, &rec) || cie.as_ref().is_some_and(|c| in_record(r, c)))
            .copied()
            .collect();
        for r in &relocs {
            self.reference(o, u, r);
        }
    }

    /// Resolves one reference of unit `u` of origin `o`.
    fn reference(&mut self, o: Origin, u: usize, r: &Rel) {
        let sym = self.build(o).units[u].symbols[r.sym].clone();
        if let Some(sec) = sym.section {
            let name = if !sym.is_section && !sym.name.is_empty() {
                Some(sym.name.clone())
            } else {
                let unit = &self.build(o).units[u];
                unit.owner(sec).map(|i| unit.symbols[i].name.clone())
            };
            self.defined(o, u, sec, name);
            return;
        }
        let name = sym.name;
        if name.is_empty() || self.out.by_name.contains_key(&name) || self.renamed(&name) {
            return;
        }
        // Defined in another object of the same build?
        if let Some(&(du, ds)) = self.build(o).defined.get(&name)
            && let Some(sec) = self.build(o).units[du].symbols[ds].section
        {
            self.defined(o, du, sec, Some(name));
            return;
        }
        if !self.inp.host.lookup(&name).is_empty() || (self.inp.imported)(&name) {
            self.out.externs.insert(name);
            return;
        }
        if let Some(deps) = self.inp.deps
            && let Some(&(du, ds)) = deps.defined.get(&name)
            && let Some(sec) = deps.units[du].symbols[ds].section
        {
            self.defined(Origin::Dep, du, sec, Some(name));
            return;
        }
        self.out.missing.insert(name);
    }

    /// A reference to section `sec` of unit `u`, whose symbol is `name`.
    fn defined(&mut self, o: Origin, u: usize, sec: usize, name: Option<String>) {
        let key = (o, u, sec);
        if self.carried.contains(&key) || name.as_deref().is_some_and(|n| self.renamed(n)) {
            return;
        }
        if let Some(n) = &name
            && let Some(&k) = self.out.by_name.get(n)
            && k != key
        {
            return; // another copy of it is carried already
        }
        let host = self.inp.host;
        let has =
            |n: &str, kinds: &[HostKind]| host.lookup(n).iter().any(|d| kinds.contains(&d.kind));
        let s = &self.build(o).units[u].sections[sec];
        let (tls, code, writable) = (s.tls(), s.code(), s.writable());
        if tls {
            match name {
                Some(n) if has(&n, &[HostKind::ThreadLocal]) => {
                    self.out.externs.insert(n);
                }
                Some(n) => self.out.refusals.push(format!(
                    "{}: a new thread-local; a patch cannot add thread-locals to threads that already run (keep the state in a static)",
                    demangle(&n)
                )),
                None => self.out.refusals.push(format!(
                    "an unnamed thread-local in section {}; a patch cannot add thread-locals",
                    s.name
                )),
            }
            return;
        }
        let Some(n) = name else {
            self.carry(key, "a constant it uses".into());
            return;
        };
        if code {
            let why = if self.roots.contains(&n) {
                Some("its source changed".to_owned())
            } else if o == Origin::Fixed {
                self.changed(&n).or_else(|| {
                    self.reaches_changed(&n)
                        .map(|c| format!("it calls {}, which changed", demangle(&c)))
                })
            } else {
                None
            };
            match why {
                Some(w) => self.carry(key, w),
                None if has(&n, &[HostKind::Function])
                    && (hotfix_core::linked::is_rust_symbol(&n) || self.global(o, u, &n)) =>
                {
                    self.out.externs.insert(n);
                }
                None => self.carry(key, "the running host does not have it".into()),
            }
            return;
        }
        // A name that does not say which symbol it is (a local label such as
        // `GCC_except_table0`, which every object has) never means the host's.
        let unique = hotfix_core::linked::is_rust_symbol(&n) || self.global(o, u, &n);
        let kinds: &[HostKind] = if writable {
            &[HostKind::Writable]
        } else {
            &[HostKind::ReadOnly, HostKind::Writable]
        };
        if unique && has(&n, kinds) {
            self.out.externs.insert(n);
        } else if writable && !unique {
            self.out.refusals.push(format!(
                "{n}: a static whose name does not tell which of the host's it is"
            ));
        } else if writable {
            self.carry(key, "a new static".into());
        } else {
            self.carry(key, "a constant it uses".into());
        }
    }

    /// Whether `n` is a global symbol of unit `u`.
    fn global(&self, o: Origin, u: usize, n: &str) -> bool {
        self.build(o).units[u]
            .symbols
            .iter()
            .any(|s| s.global && s.name == n)
    }

    /// Whether `n` is an item `#[patchable]` generated beside a function that
    /// moved: it then stands for the host's item of the same function
    /// (recorded in `renames`, left to the host).
    fn renamed(&mut self, n: &str) -> bool {
        if !self.inp.host.lookup(n).is_empty() {
            return false;
        }
        let std::borrow::Cow::Owned(stable) = stable_name(n) else {
            return false;
        };
        let host = match self.generated.get(&stable) {
            None => return false,
            Some(Some(host)) => host.clone(),
            Some(None) => {
                self.out.refusals.push(format!(
                    "{}: the fix moved a #[patchable] function that shares its name with another of the same module, and which one it is cannot be told; keep the fix's line count, or build the patch against a base where the function does not move",
                    demangle(n)
                ));
                return true;
            }
        };
        self.out.externs.insert(host.clone());
        self.out.renames.insert(n.to_owned(), host);
        true
    }

    /// The changed function that function `n` of the fixed build reaches
    /// through other functions of the build (directly, or through a table
    /// of constants such as a vtable), if any. The host's copy of `n` would
    /// call the host's old copy of it: a closure passed to a generic
    /// function keeps its name when its code changes, and so does the
    /// instance of the generic function that calls it.
    fn reaches_changed(&mut self, n: &str) -> Option<String> {
        if let Some(known) = self.reach.get(n) {
            return known.clone();
        }
        self.reach.insert(n.to_owned(), None); // in progress: cycles reach nothing new
        let fixed = self.inp.fixed;
        let &(u, s) = fixed.defined.get(n)?;
        let sec = fixed.units[u].symbols[s].section?;
        let mut found = None;
        let mut tables: Vec<(usize, usize)> = vec![(u, sec)];
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        while let Some((tu, ts)) = tables.pop() {
            if found.is_some() || !seen.insert((tu, ts)) {
                continue;
            }
            for r in &fixed.units[tu].sections[ts].relocs {
                let t = &fixed.units[tu].symbols[r.sym];
                let (du, dsec, name) = match t.section {
                    Some(ds) => {
                        let unit = &fixed.units[tu];
                        let name = if !t.is_section && !t.name.is_empty() {
                            Some(t.name.clone())
                        } else {
                            unit.owner(ds).map(|i| unit.symbols[i].name.clone())
                        };
                        (tu, ds, name)
                    }
                    None => match fixed.defined.get(&t.name) {
                        Some(&(du, dsym)) => match fixed.units[du].symbols[dsym].section {
                            Some(ds) => (du, ds, Some(t.name.clone())),
                            None => continue,
                        },
                        None => continue, // a dependency's: unchanged
                    },
                };
                let target = &fixed.units[du].sections[dsec];
                if !target.code() {
                    let unique = name
                        .as_deref()
                        .is_some_and(hotfix_core::linked::is_rust_symbol);
                    if !unique && target.alloc() && !target.writable() {
                        tables.push((du, dsec)); // a vtable or table of pointers
                    }
                    continue;
                }
                let Some(m) = name else { continue };
                if m == n || self.roots.contains(&m) {
                    continue; // a wrapper's direct call of its original is behind its slot
                }
                if self.changed(&m).is_some() {
                    found = Some(m);
                } else if let Some(c) = self.reaches_changed(&m) {
                    found = Some(c);
                }
                if found.is_some() {
                    break;
                }
            }
        }
        self.reach.insert(n.to_owned(), found.clone());
        found
    }

    /// Why function `n` of the fixed build is carried, if its code is not the
    /// base build's.
    fn changed(&mut self, n: &str) -> Option<String> {
        if let Some(known) = self.changes.get(n) {
            return known.clone();
        }
        let why = self.compare(n);
        self.changes.insert(n.to_owned(), why.clone());
        why
    }

    fn compare(&self, n: &str) -> Option<String> {
        let fixed = self.inp.fixed;
        let base = self.inp.base;
        let Some(&(bu, bs)) = base.defined.get(n) else {
            return Some("it is new".into());
        };
        let &(fu, fs) = fixed.defined.get(n)?;
        let bsec = base.units[bu].symbols[bs].section?;
        let fsec = fixed.units[fu].symbols[fs].section?;
        (!same_code(base, (bu, bsec), fixed, (fu, fsec))).then(|| "its code changed".to_owned())
    }
}

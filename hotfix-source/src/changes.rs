//! What changed between the source a host was built from (the base) and the
//! working tree, sorted into what a patch carries and what it cannot:
//!
//! - a changed body of a `#[patchable]` function becomes a replacement;
//! - new private functions, methods, types and consts that the changed
//!   bodies use (directly or through each other), and `use` declarations, are
//!   allowed: they are compiled into the patch;
//! - everything else is refused, one line per item, saying what to do.

use crate::units::{Kind, Unit, Units};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

/// A replacement: a `#[patchable]` function whose body changed.
#[derive(Debug, Clone)]
pub struct Fix {
    /// `fn k::m::f` or `fn k::m::Ty::f`.
    pub name: String,
    /// The working tree's file and the line of the function's name.
    pub file: PathBuf,
    pub line: usize,
    /// Digest of the fixed body.
    pub body: String,
}

/// A change a patch cannot carry.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub file: PathBuf,
    pub line: usize,
    /// What changed.
    pub what: String,
    /// What the user should do.
    pub todo: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}; {}",
            self.file.display(),
            self.line,
            self.what,
            self.todo
        )
    }
}

/// The classification of one crate's changes.
#[derive(Debug, Default)]
pub struct Classified {
    pub fixes: Vec<Fix>,
    /// Names of the new units the patch carries.
    pub added: Vec<String>,
    pub refusals: Vec<Refusal>,
}

/// What to do with a classification.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Build a patch of [`Classified::fixes`].
    Patch,
    /// Nothing to patch.
    NothingChanged,
    /// At least one refusal.
    Refused,
}

impl Classified {
    /// A digest of what the patch carries: each fixed body and each addition
    /// (as found in `work`). Two builds of the same fix have the same one.
    pub fn fix_digest(&self, work: &Units) -> String {
        let mut text = String::new();
        for f in &self.fixes {
            text.push_str(&format!("{} {}\n", f.name, f.body));
        }
        for a in &self.added {
            let d = work.map.get(a).map_or("", |u| u.digest.as_str());
            text.push_str(&format!("{a} {d}\n"));
        }
        crate::digest::short_digest(text.as_bytes())
    }

    pub fn outcome(&self) -> Outcome {
        if !self.refusals.is_empty() {
            Outcome::Refused
        } else if self.fixes.is_empty() {
            Outcome::NothingChanged
        } else {
            Outcome::Patch
        }
    }
}

/// Sorts the changes from `base` to `work` (the same crate).
pub fn classify(base: &Units, work: &Units) -> Classified {
    let mut out = Classified::default();
    let mut added = Vec::new();
    for (name, w) in &work.map {
        match base.map.get(name) {
            None => added.push(w),
            Some(b) if b.digest == w.digest => {
                if w.patchable && b.body != w.body {
                    out.fixes.push(Fix {
                        name: name.clone(),
                        file: w.file.clone(),
                        line: w.line,
                        body: w.body.clone().unwrap_or_default(),
                    });
                }
            }
            Some(_) => {
                if let Some(r) = changed(w, work) {
                    out.refusals.push(r);
                }
            }
        }
    }
    for (name, b) in &base.map {
        if !work.map.contains_key(name) {
            out.refusals.push(Refusal {
                file: b.file.clone(),
                line: b.line,
                what: format!("{name} was removed"),
                todo: "the running host still has it and a patch cannot take it away; \
                       restore it (the fix may simply stop using it)"
                    .into(),
            });
        }
    }
    additions(&mut out, &added, work);
    out.refusals
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out
}

/// The refusal of a unit present on both sides whose digest differs.
fn changed(w: &Unit, work: &Units) -> Option<Refusal> {
    let name = &w.name;
    let (what, todo) = match w.kind {
        // Imports change no code or layout of the host.
        Kind::Use => return None,
        Kind::Fn | Kind::Method if w.patchable => (
            format!("the signature or attributes of #[patchable] {name} changed"),
            "a patch replaces bodies only: keep the signature and attributes as at the base \
             revision"
                .to_owned(),
        ),
        Kind::Fn | Kind::Method => {
            let callers = patchable_callers(w, work);
            let todo = if callers.is_empty() {
                "it is not #[patchable] and no #[patchable] function calls it: revert the change"
                    .to_owned()
            } else {
                format!(
                    "it is not #[patchable]: put the change in the #[patchable] functions that \
                     call it ({}), whose patch would carry it, for example through a new private \
                     helper",
                    callers.join(", ")
                )
            };
            (format!("the body of {name} changed"), todo)
        }
        Kind::Struct | Kind::Enum | Kind::Union => (
            format!("{name} changed"),
            "a patch cannot change a type the running host uses; keep it as at the base \
             revision (a new private type is allowed)"
                .to_owned(),
        ),
        Kind::Const => (
            format!("{name} changed"),
            "the running host's code was compiled with the old value; keep it and add a new \
             private const that the fix uses"
                .to_owned(),
        ),
        Kind::Static => (
            format!("{name} changed"),
            "a patch cannot change the running host's state; keep the static as at the base \
             revision"
                .to_owned(),
        ),
        Kind::Unparsed => (
            format!("{name} changed and cannot be parsed"),
            "fix the syntax".to_owned(),
        ),
        _ => (
            format!("{name} changed"),
            "a patch carries only new bodies of #[patchable] functions and new private items; \
             revert this change"
                .to_owned(),
        ),
    };
    Some(Refusal {
        file: w.file.clone(),
        line: w.line,
        what,
        todo,
    })
}

/// The `#[patchable]` functions of `work` that call `unit`, directly or
/// through functions that are not patchable, by path.
fn patchable_callers(unit: &Unit, work: &Units) -> Vec<String> {
    let mut seen = BTreeSet::from([unit.ident.clone()]);
    let mut frontier = vec![unit.ident.clone()];
    let mut found = BTreeSet::new();
    while let Some(callee) = frontier.pop() {
        for u in work.map.values() {
            if !matches!(u.kind, Kind::Fn | Kind::Method) || u.name == unit.name {
                continue;
            }
            if !u.uses.contains(&callee) || u.ident == callee {
                continue;
            }
            if u.patchable {
                found.insert(format!("`{}`", u.name.trim_start_matches("fn ")));
            } else if seen.insert(u.ident.clone()) {
                frontier.push(u.ident.clone());
            }
        }
    }
    found.into_iter().collect()
}

/// Kinds a patch may add, when private and used by the fix.
fn addable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Fn
            | Kind::Method
            | Kind::Struct
            | Kind::Enum
            | Kind::Union
            | Kind::Const
            | Kind::Type
    )
}

/// Sorts the new units: allowed (used by the fix), or refused.
fn additions(out: &mut Classified, added: &[&Unit], work: &Units) {
    // Identifiers the fix uses, grown by every allowed addition it reaches.
    let mut used: BTreeSet<String> = out
        .fixes
        .iter()
        .filter_map(|f| work.map.get(&f.name))
        .flat_map(|u| u.uses.iter().cloned())
        .collect();
    let candidates: Vec<&Unit> = added
        .iter()
        .copied()
        .filter(|u| addable(u.kind) && !u.public && !u.patchable)
        .collect();
    let mut taken = BTreeSet::new();
    loop {
        let before = taken.len();
        for u in &candidates {
            if !taken.contains(&u.name) && used.contains(&u.ident) {
                taken.insert(u.name.clone());
                used.extend(u.uses.iter().cloned());
            }
        }
        if taken.len() == before {
            break;
        }
    }
    for u in added {
        let name = &u.name;
        let refusal = |what: String, todo: &str| Refusal {
            file: u.file.clone(),
            line: u.line,
            what,
            todo: todo.to_owned(),
        };
        match u.kind {
            Kind::Use | Kind::ImplHeader { trait_: false } => {}
            _ if taken.contains(name) => out.added.push(name.clone()),
            Kind::Static => out.refusals.push(refusal(
                format!("new {name}"),
                "a patch's static would be its own copy, not state of the running host; keep \
                 state in an existing #[shared] static",
            )),
            Kind::Fn | Kind::Method if u.patchable => out.refusals.push(refusal(
                format!("new #[patchable] {name}"),
                "the running host has no slot for it; remove #[patchable] (a new private helper \
                 is allowed)",
            )),
            k if addable(k) && u.public => out.refusals.push(refusal(
                format!("new public {name}"),
                "a patch adds only private items: remove `pub`",
            )),
            k if addable(k) => out.refusals.push(refusal(
                format!("new {name} is not used by a changed #[patchable] function"),
                "a patch carries only what the fix needs: remove it, or call it from the fix",
            )),
            _ => out.refusals.push(refusal(
                format!("new {name}"),
                "a patch adds only private functions, types and consts that the fix uses; \
                 remove it",
            )),
        }
    }
    out.added.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_text(base: &str, work: &str) -> Classified {
        let b = Units::from_text("k", "lib.rs", base).unwrap();
        let w = Units::from_text("k", "lib.rs", work).unwrap();
        classify(&b, &w)
    }

    const BASE: &str = "
pub struct P { a: u8 }
const LIMIT: i64 = 3;
static COUNT: u8 = 0;
fn helper(a: i64) -> i64 { a }
#[patchable] pub fn f(a: i64) -> i64 { helper(a) }
#[patchable] impl P { pub fn get(&self) -> u8 { self.a } }
";

    #[test]
    fn a_changed_patchable_body_is_a_fix() {
        let c = classify_text(
            BASE,
            &BASE
                .replace("{ self.a }", "{ self.a + 1 }")
                .replace("pub struct P", "\npub struct P"),
        );
        assert!(c.refusals.is_empty(), "{:?}", c.refusals);
        assert_eq!(c.fixes.len(), 1);
        assert_eq!(c.fixes[0].name, "fn k::P::get");
        assert_eq!(c.fixes[0].line, 8, "the line of `get` in the working tree");
    }

    #[test]
    fn each_refusal_class_names_the_item_and_what_to_do() {
        let cases = [
            (
                "fn helper(a: i64) -> i64 { a }",
                "fn helper(a: i64) -> i64 { a + 1 }",
                "the body of fn k::helper changed",
                "(`k::f`)",
            ),
            (
                "pub struct P { a: u8 }",
                "pub struct P { a: u16 }",
                "struct k::P changed",
                "cannot change a type",
            ),
            (
                "const LIMIT: i64 = 3;",
                "const LIMIT: i64 = 4;",
                "const k::LIMIT changed",
                "new private const",
            ),
            (
                "static COUNT: u8 = 0;",
                "static COUNT: u8 = 1;",
                "static k::COUNT changed",
                "state",
            ),
            (
                "pub fn f(a: i64) -> i64",
                "pub fn f(a: i64, b: i64) -> i64",
                "signature or attributes of #[patchable] fn k::f",
                "bodies only",
            ),
            (
                "const LIMIT: i64 = 3;",
                "",
                "const k::LIMIT was removed",
                "restore it",
            ),
        ];
        for (from, to, what, todo) in cases {
            let c = classify_text(BASE, &BASE.replace(from, to));
            assert_eq!(c.outcome(), Outcome::Refused, "{from} -> {to}");
            let r = c.refusals.iter().find(|r| r.what.contains(what));
            let r = r.unwrap_or_else(|| panic!("{from} -> {to}: {:?}", c.refusals));
            assert!(r.todo.contains(todo), "{r}");
            assert!(r.to_string().starts_with("lib.rs:"), "{r}");
        }
    }

    #[test]
    fn new_items_are_allowed_only_private_and_used() {
        let used = BASE.replace("{ helper(a) }", "{ twice(a) }")
            + "fn twice(a: i64) -> i64 { helper(a) * K }\nconst K: i64 = 2;\n";
        let c = classify_text(BASE, &used);
        assert!(c.refusals.is_empty(), "{:?}", c.refusals);
        assert_eq!(c.added, ["const k::K", "fn k::twice"]);

        let unused = used.clone() + "fn spare() {}\n";
        let c = classify_text(BASE, &unused);
        assert!(
            c.refusals[0].what.contains("fn k::spare is not used"),
            "{:?}",
            c.refusals
        );

        let public = used.replace("fn twice", "pub fn twice");
        let c = classify_text(BASE, &public);
        assert!(
            c.refusals[0].what.contains("new public fn k::twice"),
            "{:?}",
            c.refusals
        );

        let stat = used.clone() + "static NEW: u8 = 0;\n";
        let c = classify_text(BASE, &stat);
        assert!(c.refusals[0].todo.contains("#[shared]"), "{:?}", c.refusals);
    }

    #[test]
    fn docs_and_imports_do_not_count() {
        let c = classify_text(BASE, &format!("/// doc\nuse std::fmt;\n{BASE}"));
        assert_eq!(c.outcome(), Outcome::NothingChanged, "{:?}", c.refusals);
    }
}

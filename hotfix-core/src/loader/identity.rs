//! Host identity per crate: what a patch saw of each host crate it was compiled
//! against (build and source, see [`crate::abi::CrateIdentity`]) must be what
//! the running host is. Read from the patch file before anything of it loads.

use super::image::{Image, ImageError};
use crate::abi::CrateIdentity;
use crate::error::{BuildDifference, Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::mem::{offset_of, size_of};

/// Longest crate name, build description, source digest and item list.
const MAX_NAME: u64 = 256;
const MAX_BUILD: u64 = 64 * 1024;
const MAX_DIGEST: u64 = 4096;
const MAX_ITEMS: u64 = 8 * 1024 * 1024;

/// A crate identity as the patch carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedCrate {
    pub name: String,
    pub build: String,
    pub source: String,
    pub items: String,
}

/// Reads the `&'static CrateIdentity` stored at `vaddr`. Identities are read
/// once per address (every function of a crate points at an equal one).
pub(crate) fn read(
    image: &Image<'_>,
    cache: &mut HashMap<u64, ParsedCrate>,
    vaddr: u64,
    ptr_first: bool,
    what: &str,
) -> Result<ParsedCrate, ImageError> {
    let at = image
        .ptr_at(vaddr, what)?
        .ok_or_else(|| format!("{what}: null crate identity pointer"))?;
    if let Some(c) = cache.get(&at) {
        return Ok(c.clone());
    }
    let parsed = read_at(image, at, ptr_first, what)?;
    cache.insert(at, parsed.clone());
    Ok(parsed)
}

/// Most crates a patch's registry may describe.
const MAX_CRATES: u64 = 1024;

/// Reads the `&'static [CrateIdentity]` stored at `vaddr` (the registry's
/// `crates`).
pub(crate) fn read_list(
    image: &Image<'_>,
    vaddr: u64,
    ptr_first: bool,
    what: &str,
) -> Result<Vec<ParsedCrate>, ImageError> {
    let (p, l) = if ptr_first {
        (vaddr, Image::at(vaddr, 8, what)?)
    } else {
        (Image::at(vaddr, 8, what)?, vaddr)
    };
    let count = image.u64_at(l, what)?;
    if count > MAX_CRATES {
        return Err(format!(
            "{what}: {count} crates, over the limit of {MAX_CRATES}"
        ));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let start = image
        .ptr_at(p, what)?
        .ok_or_else(|| format!("{what}: null pointer with {count} crates"))?;
    (0..count)
        .map(|i| {
            read_at(
                image,
                start + i * size_of::<CrateIdentity>() as u64,
                ptr_first,
                what,
            )
        })
        .collect()
}

/// Reads one `CrateIdentity` stored at `at`.
fn read_at(
    image: &Image<'_>,
    at: u64,
    ptr_first: bool,
    what: &str,
) -> Result<ParsedCrate, ImageError> {
    Image::at(at, size_of::<CrateIdentity>() as u64, what)?;
    Image::check_aligned(at, std::mem::align_of::<CrateIdentity>(), what)?;
    image.bytes(at, size_of::<CrateIdentity>() as u64, what)?;
    let field = |off: usize, max: u64| image.str_at(at + off as u64, ptr_first, max, what);
    let parsed = ParsedCrate {
        name: field(offset_of!(CrateIdentity, name), MAX_NAME)?,
        build: field(offset_of!(CrateIdentity, build), MAX_BUILD)?,
        source: field(offset_of!(CrateIdentity, source), MAX_DIGEST)?,
        items: field(offset_of!(CrateIdentity, items), MAX_ITEMS)?,
    };
    Ok(parsed)
}

/// Compares every crate the patch saw with the running host's view of it.
/// Crates the host does not know are left to the checks that name them
/// (unknown target, unknown shared static).
///
/// A function's identity lists the crate's items only for one function of
/// each crate; `listed` (the registry's `crates`) has the patch's full view,
/// used to name what differs.
pub(crate) fn check<'a>(
    patch: &str,
    seen: impl IntoIterator<Item = &'a ParsedCrate>,
    listed: &[ParsedCrate],
    host: &HashMap<&str, &CrateIdentity>,
) -> Result<()> {
    let mut done = Vec::<(&str, &str, &str)>::new();
    for view in seen {
        let key = (
            view.name.as_str(),
            view.build.as_str(),
            view.source.as_str(),
        );
        if done.contains(&key) {
            continue;
        }
        done.push(key);
        let Some(h) = host.get(view.name.as_str()) else {
            continue;
        };
        let items = if view.items.is_empty() {
            listed
                .iter()
                .find(|c| c.name == view.name && c.source == view.source)
                .map_or("", |c| c.items.as_str())
        } else {
            view.items.as_str()
        };
        compare(patch, view, items, h)?;
    }
    Ok(())
}

fn compare(patch: &str, view: &ParsedCrate, items: &str, host: &CrateIdentity) -> Result<()> {
    let krate = view.name.clone();
    for (side, source) in [("the patch's", &*view.source), ("the host's", host.source)] {
        if let Some(why) = source.strip_prefix("unavailable: ") {
            return Err(Error::CrateIdentityUnknown {
                patch: patch.to_owned(),
                krate,
                side,
                why: why.to_owned(),
            });
        }
    }
    let theirs = lines(&view.build, '=');
    let ours = lines(host.build, '=');
    if let Some((key, p, h)) = first_difference(&theirs, &ours) {
        return Err(Error::CrateBuildDiffers {
            patch: patch.to_owned(),
            krate,
            diff: Box::new(BuildDifference {
                key: key.to_owned(),
                patch: p.unwrap_or("(absent)").to_owned(),
                host: h.unwrap_or("(absent)").to_owned(),
            }),
        });
    }
    if view.source == host.source {
        return Ok(());
    }
    let theirs = lines(items, '\t');
    let ours = lines(host.items, '\t');
    let what = match first_difference(&theirs, &ours) {
        _ if items.is_empty() || host.items.is_empty() => {
            "its source digest differs from the running host's (which item, the lists at hand do not tell)".to_owned()
        }
        Some((item, Some(_), Some(_))) => format!("{item} differs from the running host's"),
        Some((item, Some(_), None)) => format!("{item} is not in the running host's source"),
        Some((item, None, _)) => format!("{item} is missing from the patch's source"),
        // Equal items with unequal digests: the digest text itself was edited.
        None => "its source digest differs from the running host's".to_owned(),
    };
    Err(Error::CrateSourceDiffers {
        patch: patch.to_owned(),
        krate,
        what,
    })
}

/// `key<sep>value` lines as a sorted map.
fn lines(text: &str, sep: char) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once(sep))
        .collect::<BTreeMap<_, _>>()
}

/// The first key (in order) whose value differs, with both values.
fn first_difference<'a>(
    patch: &BTreeMap<&'a str, &'a str>,
    host: &BTreeMap<&'a str, &'a str>,
) -> Option<(&'a str, Option<&'a str>, Option<&'a str>)> {
    let mut keys: Vec<&str> = patch.keys().chain(host.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().find_map(|k| {
        let (p, h) = (patch.get(k).copied(), host.get(k).copied());
        (p != h).then_some((k, p, h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> CrateIdentity {
        CrateIdentity {
            name: "k",
            build: "version=1.0.0\nfeatures=\n",
            source: "aa",
            items: "fn k::a\t01\nstruct k::P\t02\n",
        }
    }

    fn view(build: &str, source: &str, items: &str) -> ParsedCrate {
        ParsedCrate {
            name: "k".into(),
            build: build.into(),
            source: source.into(),
            items: items.into(),
        }
    }

    #[test]
    fn names_the_first_differing_item() {
        let h = host();
        let same = view(h.build, "aa", h.items);
        assert!(compare("p", &same, &same.items, &h).is_ok());
        let changed = view(h.build, "bb", "fn k::a\t01\nstruct k::P\t03\n");
        let e = compare("p", &changed, &changed.items, &h)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("struct k::P differs from the running host's"),
            "{e}"
        );
        let added = view(h.build, "bb", "fn k::a\t01\nfn k::b\t05\nstruct k::P\t02\n");
        let e = compare("p", &added, &added.items, &h)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fn k::b is not in the running host's source"),
            "{e}"
        );
        let removed = view(h.build, "bb", "struct k::P\t02\n");
        let e = compare("p", &removed, &removed.items, &h)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fn k::a is missing from the patch's source"),
            "{e}"
        );
    }

    #[test]
    fn names_the_differing_build_setting() {
        let h = host();
        let v = view("version=1.0.0\nfeatures=extra\n", "aa", h.items);
        let e = compare("p", &v, &v.items, &h).unwrap_err().to_string();
        assert!(e.contains("features"), "{e}");
        assert!(e.contains("`extra`"), "{e}");
    }

    #[test]
    fn an_unknown_identity_is_refused() {
        let h = host();
        let v = view(h.build, "unavailable: no crate root file", h.items);
        let e = compare("p", &v, &v.items, &h).unwrap_err().to_string();
        assert!(e.contains("no crate root file"), "{e}");
    }
}

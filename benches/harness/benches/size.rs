//! What `#[patchable]` adds to a host binary: release builds of `size-host`
//! with 0, 100 and 1,000 generated functions, without the attribute (the
//! baseline: the same functions, `#[inline(never)]`, called the same way) and
//! with it; section sizes read with the `object` crate, and the text split by
//! symbol into original bodies, entry stubs and thunks.
//!
//! `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench size`

use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Variant {
    name: &'static str,
    what: &'static str,
    features: &'static [&'static str],
    n: usize,
}

const VARIANTS: [Variant; 6] = [
    Variant {
        name: "bare",
        what: "no functions, no hotfix runtime",
        features: &[],
        n: 0,
    },
    Variant {
        name: "runtime",
        what: "no functions, hotfix runtime linked (applies argv[1])",
        features: &["runtime"],
        n: 0,
    },
    Variant {
        name: "plain-100",
        what: "100 plain functions + runtime",
        features: &["runtime", "n100"],
        n: 100,
    },
    Variant {
        name: "patchable-100",
        what: "100 `#[patchable]` functions + runtime",
        features: &["patchable", "n100"],
        n: 100,
    },
    Variant {
        name: "plain-1000",
        what: "1,000 plain functions + runtime",
        features: &["runtime", "n1000"],
        n: 1000,
    },
    Variant {
        name: "patchable-1000",
        what: "1,000 `#[patchable]` functions + runtime",
        features: &["patchable", "n1000"],
        n: 1000,
    },
];

/// Sizes of one binary.
#[derive(Default, Clone)]
struct Sizes {
    file: u64,
    /// `size` (Berkeley): text = allocated read-only (code and constants),
    /// data = allocated writable, bss = allocated, not in the file.
    text: u64,
    data: u64,
    bss: u64,
    /// By category (see `category`).
    cat: BTreeMap<&'static str, u64>,
    /// Text by symbol kind (see `symbol_kind`).
    sym: BTreeMap<&'static str, u64>,
}

/// The category of a section.
fn category(name: &str) -> &'static str {
    match name {
        ".text" => "code (.text)",
        n if n.contains("linkme") => "slots + registration (linkme sections)",
        ".data.rel.ro" | ".rodata" => "metadata and constants (.data.rel.ro, .rodata)",
        ".rela.dyn" => "relocations (.rela.dyn)",
        ".eh_frame" | ".eh_frame_hdr" | ".gcc_except_table" => "unwind tables (.eh_frame*)",
        ".symtab" | ".strtab" => "symbol tables (not loaded; strippable)",
        _ => "other sections",
    }
}

/// The kind of a text symbol, from its demangled name.
fn symbol_kind(name: &str) -> &'static str {
    if name.starts_with("__hotfix_entry_") {
        "entry stubs"
    } else if name.contains("__hotfix_original_") {
        "function bodies"
    } else if name.contains("__hotfix_catching")
        || name.contains("__hotfix_cross")
        || name.contains("__hotfix_call")
        || name.contains("panic_bridge")
    {
        "thunks (catching, cross, call)"
    } else if name.starts_with("size_host::m") {
        "function bodies"
    } else {
        "rest of the program"
    }
}

fn measure(path: &Path) -> Sizes {
    let bytes = std::fs::read(path).expect("read binary");
    let file = object::File::parse(&*bytes).expect("parse ELF");
    let mut s = Sizes {
        file: bytes.len() as u64,
        ..Default::default()
    };
    for sec in file.sections() {
        let name = sec.name().unwrap_or("");
        let size = sec.size();
        let SectionFlags::Elf { sh_flags } = sec.flags() else {
            continue;
        };
        let alloc = sh_flags & u64::from(object::elf::SHF_ALLOC) != 0;
        let write = sh_flags & u64::from(object::elf::SHF_WRITE) != 0;
        if alloc {
            if sec.kind() == SectionKind::UninitializedData
                || sec.kind() == SectionKind::UninitializedTls
            {
                s.bss += size;
            } else if write {
                s.data += size;
            } else {
                s.text += size;
            }
        }
        if name.is_empty() {
            continue;
        }
        *s.cat.entry(category(name)).or_default() += if sec.kind() == SectionKind::UninitializedData
        {
            0
        } else {
            size
        };
    }
    for sym in file.symbols() {
        if sym.kind() != object::SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        let name = rustc_demangle_lite(sym.name().unwrap_or(""));
        let kind = symbol_kind(&name);
        // An entry stub's symbol covers its 8 executed bytes; the 14-byte pad
        // before it belongs to it too.
        let extra = if kind == "entry stubs" { 14 } else { 0 };
        *s.sym.entry(kind).or_default() += sym.size() + extra;
    }
    s
}

/// Demangles legacy Rust symbols well enough to classify them (`_ZN..E`).
fn rustc_demangle_lite(sym: &str) -> String {
    let Some(mut rest) = sym.strip_prefix("_ZN") else {
        return sym.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(c) = rest.chars().next() {
        if !c.is_ascii_digit() {
            break;
        }
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let len: usize = digits.parse().unwrap_or(0);
        rest = &rest[digits.len()..];
        if rest.len() < len {
            break;
        }
        parts.push(&rest[..len]);
        rest = &rest[len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.starts_with('h') && p.len() == 17)
    {
        parts.pop();
    }
    parts.join("::")
}

fn build(v: &Variant) -> PathBuf {
    harness::cargo_build(&["size-host"], v.features);
    let dir = harness::target_dir().join("stage").join("size");
    harness::stage(&harness::built("size-host"), &dir, v.name)
}

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn main() {
    let machine = harness::machine();
    let sizes: Vec<(usize, Sizes)> = VARIANTS
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = build(v);
            // The binary runs (and calls every function).
            let out = std::process::Command::new(&path)
                .output()
                .expect("run size-host");
            assert!(out.status.success(), "{} failed", v.name);
            (i, measure(&path))
        })
        .collect();
    let get = |name: &str| -> &Sizes {
        let i = VARIANTS
            .iter()
            .position(|v| v.name == name)
            .expect("variant");
        &sizes[i].1
    };

    // Per function: (patchable − plain) / N.
    let mut cats: Vec<&'static str> = Vec::new();
    for (_, s) in &sizes {
        for k in s.cat.keys() {
            if !cats.contains(k) {
                cats.push(k);
            }
        }
    }
    let per = |a: u64, b: u64, n: usize| format!("{:.1}", (a as f64 - b as f64) / n as f64);
    let mut rows = Vec::new();
    let loaded = |s: &Sizes| s.text + s.data + s.bss;
    rows.push(vec![
        "**loaded image (text + data + bss)**".into(),
        format!(
            "**{}**",
            per(loaded(get("patchable-100")), loaded(get("plain-100")), 100)
        ),
        format!(
            "**{}**",
            per(
                loaded(get("patchable-1000")),
                loaded(get("plain-1000")),
                1000
            )
        ),
    ]);
    rows.push(vec![
        "file".into(),
        per(get("patchable-100").file, get("plain-100").file, 100),
        per(get("patchable-1000").file, get("plain-1000").file, 1000),
    ]);
    for k in &cats {
        let c = |name: &str| get(name).cat.get(k).copied().unwrap_or(0);
        rows.push(vec![
            format!("section: {k}"),
            per(c("patchable-100"), c("plain-100"), 100),
            per(c("patchable-1000"), c("plain-1000"), 1000),
        ]);
    }
    let mut kinds: Vec<&'static str> = Vec::new();
    for (_, s) in &sizes {
        for k in s.sym.keys() {
            if !kinds.contains(k) {
                kinds.push(k);
            }
        }
    }
    for k in &kinds {
        let c = |name: &str| get(name).sym.get(k).copied().unwrap_or(0);
        rows.push(vec![
            format!("code by symbol: {k}"),
            per(c("patchable-100"), c("plain-100"), 100),
            per(c("patchable-1000"), c("plain-1000"), 1000),
        ]);
    }

    let mut md = String::new();
    md.push_str("Reproduce: `cargo bench --manifest-path benches/Cargo.toml --target-dir target/benches --bench size`\n\n");
    md.push_str(&machine);
    md.push_str("\n\n#### Bytes added per `#[patchable]` function ((patchable − plain) / N)\n\n");
    md.push_str(&harness::table(&["what", "N = 100", "N = 1,000"], &rows));

    let mut rows = Vec::new();
    let base = |v: &Variant| match v.n {
        0 => None,
        n => Some(get(if n == 100 { "plain-100" } else { "plain-1000" })),
    };
    for (i, v) in VARIANTS.iter().enumerate() {
        let s = &sizes[i].1;
        let ratio = match (v.name.starts_with("patchable"), base(v)) {
            (true, Some(b)) => format!("**{:.3}x**", s.file as f64 / b.file as f64),
            _ => "—".into(),
        };
        rows.push(vec![
            format!("`{}`: {}", v.name, v.what),
            ratio,
            kib(s.file),
            kib(s.text),
            kib(s.data),
            kib(s.bss),
            kib(s.cat.get(category(".text")).copied().unwrap_or(0)),
        ]);
    }
    md.push_str("\n#### Host binary sizes (release, not stripped)\n\n");
    md.push_str(&harness::table(
        &[
            "binary",
            "file / same without attribute",
            "file",
            "text (size -A: r/o alloc)",
            "data",
            "bss",
            ".text",
        ],
        &rows,
    ));
    harness::publish("size", &md);
}

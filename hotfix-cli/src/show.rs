//! How replies are shown to people.

use hotfix_core::PatchInfo;
use hotfix_core::control::protocol::{CheckReport, CheckTarget, StatusReply, WirePatch};
use std::fmt::Write;

/// `name version #id`.
pub fn patch_label(p: &WirePatch) -> String {
    format!("{} {} #{}", p.name, p.version, p.id)
}

/// The functions a patch replaces, foreign ones marked.
fn replaced(p: &WirePatch) -> String {
    let mut all: Vec<String> = p.targets.clone();
    all.extend(p.foreign.iter().map(|f| format!("{f} (foreign)")));
    all.join(", ")
}

/// `applied NAME VERSION #ID: f, g`.
pub fn applied(p: &WirePatch) -> String {
    format!("applied {}: {}", patch_label(p), replaced(p))
}

/// The status as a table.
pub fn status(s: &StatusReply) -> String {
    let mut out = format!("process {} {}\n", s.pid, s.exe);
    if s.patches.is_empty() {
        out.push_str("no patch applied\n");
        return out;
    }
    out.push_str("applied patches, oldest first:\n");
    for p in &s.patches {
        let _ = writeln!(
            out,
            "  #{:<4} {} {}  ({}, {}, sha256 {})",
            p.id,
            p.name,
            p.version,
            p.strategy,
            p.file,
            &p.sha256[..p.sha256.len().min(12)]
        );
    }
    let width = s
        .functions
        .iter()
        .map(|f| f.function.len())
        .max()
        .unwrap_or(0);
    out.push_str("live versions:\n");
    for f in &s.functions {
        let _ = writeln!(
            out,
            "  {:<width$}  {} {} #{}",
            f.function, f.patch, f.version, f.id
        );
    }
    out
}

fn now(t: &CheckTarget) -> String {
    match &t.live {
        None => "now: the original".to_owned(),
        Some(l) => format!("shadows {} {} #{}", l.patch, l.version, l.id),
    }
}

/// What a check found.
pub fn check(pid: u32, c: &CheckReport) -> String {
    let mut out = format!(
        "process {pid}: {} {} ({}, sha256 {}) passes every check; nothing was applied\n",
        c.name, c.version, c.file, c.sha256
    );
    let _ = writeln!(out, "applying it (as #{}) would replace:", c.id);
    let width = c
        .targets
        .iter()
        .chain(&c.foreign)
        .map(|t| t.function.len() + if c.foreign.contains(t) { 10 } else { 0 })
        .max()
        .unwrap_or(0);
    for t in &c.targets {
        let _ = writeln!(out, "  {:<width$}  {}", t.function, now(t));
    }
    for t in &c.foreign {
        let name = format!("{} (foreign)", t.function);
        let _ = writeln!(out, "  {name:<width$}  {}", now(t));
    }
    if c.apply_hook {
        out.push_str("it has an on_apply hook, which runs at apply and may still veto it\n");
    }
    out
}

/// What a patch file holds.
pub fn inspect(i: &PatchInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "file             {}", i.file.display());
    let _ = writeln!(out, "size             {} bytes", i.size);
    let _ = writeln!(out, "sha256           {}", i.sha256);
    if i.unreadable.is_none() {
        let _ = writeln!(out, "name             {}", i.name);
        let _ = writeln!(out, "version          {}", i.version);
    }
    let b = &i.build;
    let rustc = b.rustc.lines().next().unwrap_or_default();
    let _ = writeln!(out, "built by         {rustc}");
    let _ = writeln!(out, "target           {}", b.target);
    let _ = writeln!(out, "panic            {}", b.panic);
    let _ = writeln!(out, "debug assertions {}", b.debug_assertions);
    let _ = writeln!(out, "target features  {}", b.target_features);
    let _ = writeln!(out, "hotfix ABI       {}", b.hotfix_abi);
    let _ = writeln!(out, "bridged crates   {}", b.bridged_crates);
    let signer = match &i.signer {
        Some(key) => format!(
            "key {key} (per {}.sig; a host verifies it)",
            i.file.display()
        ),
        None => "none (no .sig file beside it)".to_owned(),
    };
    let _ = writeln!(out, "signer           {signer}");
    if let Some(h) = &i.linked {
        let _ = writeln!(
            out,
            "kind             linked patch: only the changed code, linked to the host's own"
        );
        let _ = writeln!(
            out,
            "made for         crate {} at {}, profile {}, as `{}`",
            h.krate, h.base, h.profile, h.cargo
        );
        let _ = writeln!(out, "replaces:");
        for t in &i.targets {
            let _ = writeln!(out, "  {}  ({})", t.path, t.location);
        }
        return out;
    }
    if let Some(why) = &i.unreadable {
        let _ = writeln!(out, "contents         not read: {why}");
        return out;
    }
    let _ = writeln!(out, "replaces:");
    for t in &i.targets {
        let _ = writeln!(out, "  {}  `{}`", t.path, t.signature);
    }
    for f in &i.foreign {
        let _ = writeln!(out, "  {f} (foreign)");
    }
    if !i.shared.is_empty() {
        let _ = writeln!(out, "shared statics:  {}", i.shared.join(", "));
    }
    let hooks: Vec<&str> = [("on_apply", i.apply_hook), ("on_revert", i.revert_hook)]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect();
    if !hooks.is_empty() {
        let _ = writeln!(out, "hooks:           {}", hooks.join(", "));
    }
    out
}

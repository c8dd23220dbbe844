//! Which statics and thread-locals of a patch its replacements and hooks can
//! reach, decided from the file's bytes before anything of it is loaded.
//!
//! Every function of the patch (by its `.symtab` extent) is decoded once
//! ([`crate::arch::code_refs`]), within a budget of instructions. The walk
//! then starts at the roots and follows, breadth first:
//! - direct calls and jumps to other functions of the patch (a call into the
//!   PLT leaves the patch and stops there);
//! - every address code refers to: code is a function whose address is taken
//!   (reachable); data is an object; a GOT slot is an object whose relocation
//!   says what it points to;
//! - every relocation inside a reached object (vtables, function pointer
//!   tables, pointers to other statics), except in objects the caller keeps
//!   out (those the runtime binds to the host's);
//! - thread-local accesses: a general-dynamic lookup names the variable
//!   through its GOT pair (`DTPMOD64` and the offset); a local-dynamic one
//!   names the module, and the offsets the code applies to the returned block
//!   name the variables; a `TPOFF64` GOT slot names one too.
//!
//! Objects are delimited by their symbols; where no symbol covers an address
//! (anonymous constants such as vtables), by the nearest addresses anything
//! refers to (symbols, section bounds, relocation targets, code references).
//! Calls through registers are not followed: what they can reach is what the
//! data reached holds.

use super::image::{Image, RelocTarget};
use super::patch_symbols::{Obj, PatchSymbols, Sym};
use crate::arch::{CodeRef, RefsError, code_refs};
use std::collections::{HashMap, VecDeque};

/// Most instructions decoded for one patch: its whole code must fit.
pub(crate) const MAX_INSTRUCTIONS: u64 = 32 << 20;

/// Where the walk starts: a replacement or a hook, and how to name it.
pub(crate) struct Root {
    pub addr: u64,
    pub label: String,
}

/// A static or thread-local the walk reached.
pub(crate) struct ReachedStatic<'a> {
    pub sym: Sym<'a>,
    pub tls: bool,
    /// The root it was reached from first (index into the roots).
    pub root: usize,
    /// The functions and objects from that root's function to it, the root's
    /// function included (symbols as in the table), in order.
    pub via: Vec<&'a str>,
}

/// Why the walk could not decide what the patch reaches.
#[derive(Debug)]
pub(crate) enum ReachError {
    /// The patch's code is over [`MAX_INSTRUCTIONS`].
    OverBudget,
    /// A reached function holds bytes that are no instruction.
    Undecodable { function: String, at: u64 },
    /// Reached code or data leads to code that no function symbol covers.
    UnknownCode { from: String, target: u64 },
}

impl std::fmt::Display for ReachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OverBudget => write!(
                f,
                "its code is over {MAX_INSTRUCTIONS} instructions, more than the runtime decodes"
            ),
            Self::Undecodable { function, at } => write!(
                f,
                "the bytes at {at:#x} in {:#} decode to no instruction",
                rustc_demangle::demangle(function)
            ),
            Self::UnknownCode { from, target } => write!(
                f,
                "{:#} leads to {target:#x}, code that no function symbol of the patch covers",
                rustc_demangle::demangle(from)
            ),
        }
    }
}

/// A node of the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    /// A function (index into the symbol table's functions).
    Fn(usize),
    /// A data object, by its start.
    Obj(u64),
    /// A thread-local, by its offset in the TLS block.
    Tls(u64),
}

/// The decoded references of every function.
struct Decoded {
    refs: Vec<CodeRef>,
    /// Per function: its range in `refs`, or where it failed to decode.
    spans: Vec<Result<(usize, usize), u64>>,
}

/// Decodes every function of the patch; adds what code refers to, and every
/// relocation target, to the starts of objects.
fn decode_all(image: &Image<'_>, syms: &mut PatchSymbols<'_>) -> Result<Decoded, ReachError> {
    let mut budget = MAX_INSTRUCTIONS;
    let mut refs = Vec::new();
    let mut spans = Vec::with_capacity(syms.functions.len());
    for f in &syms.functions {
        let begin = refs.len();
        let bytes = image
            .is_code(f.start)
            .then(|| image.code_bytes(f.start, f.end - f.start))
            .flatten();
        let Some(bytes) = bytes else {
            spans.push(Err(f.start));
            continue;
        };
        let tls_entry = |a| image.reloc_target(a) == Some(RelocTarget::TlsModule);
        match code_refs(f.start, bytes, &mut budget, &tls_entry, &mut refs) {
            Ok(()) => spans.push(Ok((begin, refs.len()))),
            Err(RefsError::OverBudget) => return Err(ReachError::OverBudget),
            Err(RefsError::Undecodable { at }) => {
                refs.truncate(begin);
                spans.push(Err(at));
            }
        }
    }
    for r in &refs {
        match *r {
            CodeRef::Memory(a) | CodeRef::TlsLookup { got: a, .. } => {
                syms.starts.insert(a);
            }
            CodeRef::Branch(_) | CodeRef::TlsOffset(_) | CodeRef::TlsUnresolved => {}
        }
    }
    for (_, t) in image.reloc_targets(0, u64::MAX) {
        if let RelocTarget::Address(a) = t {
            syms.starts.insert(a);
        }
    }
    Ok(Decoded { refs, spans })
}

/// The walk's state.
struct Walk<'i, 'a> {
    image: &'i Image<'a>,
    syms: &'i PatchSymbols<'a>,
    /// Each node reached: the root it was reached from and its parent.
    seen: HashMap<Node, (usize, Option<Node>)>,
    queue: VecDeque<Node>,
    found: Vec<(Node, Sym<'a>, bool)>,
    objects: HashMap<u64, Obj<'a>>,
}

/// What the walk leaves alone, by symbol (as in the table).
pub(crate) struct Bounds<'b> {
    /// Objects whose relocations are not followed.
    pub keep_out: &'b dyn Fn(&str) -> bool,
    /// Functions not entered.
    pub stop: &'b dyn Fn(&str) -> bool,
}

/// Walks the patch's code from `roots`; returns every static and thread-local
/// reached, in the order found (breadth first: each with a shortest chain).
pub(crate) fn reach<'a>(
    image: &Image<'a>,
    syms: &mut PatchSymbols<'a>,
    roots: &[Root],
    bounds: &Bounds<'_>,
) -> Result<Vec<ReachedStatic<'a>>, ReachError> {
    let decoded = decode_all(image, syms)?;
    let syms: &PatchSymbols<'a> = syms;
    let mut walk = Walk {
        image,
        syms,
        seen: HashMap::new(),
        queue: VecDeque::new(),
        found: Vec::new(),
        objects: HashMap::new(),
    };
    for (i, root) in roots.iter().enumerate() {
        let Some(f) = syms.function_at(root.addr) else {
            return Err(ReachError::UnknownCode {
                from: root.label.clone(),
                target: root.addr,
            });
        };
        walk.visit(Node::Fn(f), i, None);
    }
    while let Some(node) = walk.queue.pop_front() {
        let root = walk.seen[&node].0;
        match node {
            Node::Fn(i) => {
                if !(bounds.stop)(syms.functions[i].name) {
                    walk.function(&decoded, i, root)?;
                }
            }
            Node::Obj(start) => {
                let obj = walk.objects[&start];
                let from = match obj.sym {
                    Some(s) if (bounds.keep_out)(s.name) => continue,
                    Some(s) => s.name.to_owned(),
                    None => format!("the data at {start:#x}"),
                };
                walk.relocations(obj.start, obj.end, &from, node, root)?;
            }
            Node::Tls(offset) => {
                // Only the stored part of the TLS image can hold relocations.
                if let (Some(sym), Some((image_at, stored))) =
                    (syms.tls_at(offset), image.tls_image())
                    && offset < stored
                {
                    let (start, end) = (
                        image_at.saturating_add(offset),
                        image_at.saturating_add(sym.end.min(stored)),
                    );
                    walk.relocations(start, end, sym.name, node, root)?;
                }
            }
        }
    }
    let found = std::mem::take(&mut walk.found);
    Ok(found
        .into_iter()
        .map(|(node, sym, tls)| {
            let (root, via) = walk.chain(node);
            ReachedStatic {
                sym,
                tls,
                root,
                via,
            }
        })
        .collect())
}

impl<'a> Walk<'_, 'a> {
    fn visit(&mut self, node: Node, root: usize, parent: Option<Node>) {
        if self.seen.contains_key(&node) {
            return;
        }
        self.seen.insert(node, (root, parent));
        self.queue.push_back(node);
    }

    /// The root a node was reached from, and the named nodes between them.
    fn chain(&self, node: Node) -> (usize, Vec<&'a str>) {
        let (root, mut parent) = self.seen[&node];
        let mut via = Vec::new();
        while let Some(p) = parent {
            let (_, up) = self.seen[&p];
            match p {
                Node::Fn(i) => via.push(self.syms.functions[i].name),
                Node::Obj(start) => {
                    if let Some(s) = self.objects[&start].sym {
                        via.push(s.name);
                    }
                }
                Node::Tls(offset) => {
                    if let Some(s) = self.syms.tls_at(offset) {
                        via.push(s.name);
                    }
                }
            }
            parent = up;
        }
        via.reverse();
        (root, via)
    }

    fn function(&mut self, decoded: &Decoded, i: usize, root: usize) -> Result<(), ReachError> {
        let f = self.syms.functions[i];
        let node = Node::Fn(i);
        let (begin, end) = decoded.spans[i].map_err(|at| ReachError::Undecodable {
            function: f.name.to_owned(),
            at,
        })?;
        // The local-dynamic lookup in progress: its base offset.
        let mut local: Option<u64> = None;
        for r in &decoded.refs[begin..end] {
            match *r {
                CodeRef::Branch(t) if f.start <= t && t < f.end => {}
                CodeRef::Branch(t) => self.code(t, f.name, node, root)?,
                CodeRef::Memory(a) => self.address(a, f.name, node, root)?,
                CodeRef::TlsLookup { got, general } => {
                    local = None;
                    if general {
                        self.tls_pair(got, node, root);
                    } else {
                        local = Some(self.tls_offset_word(got.wrapping_add(8)).unwrap_or(0));
                    }
                }
                CodeRef::TlsOffset(d) => {
                    if let Some(base) = local {
                        self.tls(base.wrapping_add(d as u64), node, root);
                    }
                }
                CodeRef::TlsUnresolved => {
                    if local.is_some() {
                        self.every_tls(f.name, node, root);
                    }
                }
            }
        }
        Ok(())
    }

    /// A local-dynamic lookup whose uses cannot all be followed counts as
    /// reaching every thread-local of the patch: nothing is left unproven.
    fn every_tls(&mut self, function: &str, node: Node, root: usize) {
        tracing::debug!(
            function,
            "a thread-local block whose uses cannot be followed: every thread-local of the patch counts as reached"
        );
        let all: Vec<u64> = self.syms.all_tls().iter().map(|s| s.start).collect();
        for offset in all {
            self.tls(offset, node, root);
        }
    }

    /// Control goes to `target`.
    fn code(&mut self, target: u64, from: &str, node: Node, root: usize) -> Result<(), ReachError> {
        if let Some(f) = self.syms.function_at(target) {
            self.visit(Node::Fn(f), root, Some(node));
            return Ok(());
        }
        if self.syms.in_plt(target) {
            return Ok(()); // another library
        }
        Err(ReachError::UnknownCode {
            from: from.to_owned(),
            target,
        })
    }

    /// Code or data at `addr` is referred to.
    fn address(
        &mut self,
        addr: u64,
        from: &str,
        node: Node,
        root: usize,
    ) -> Result<(), ReachError> {
        if self.image.is_code(addr) {
            return self.code(addr, from, node, root);
        }
        if let Some(obj) = self.syms.object_at(addr) {
            self.objects.entry(obj.start).or_insert(obj);
            let new = !self.seen.contains_key(&Node::Obj(obj.start));
            self.visit(Node::Obj(obj.start), root, Some(node));
            if new && let Some(sym) = obj.sym.filter(|_| self.image.is_mutable(obj.start)) {
                self.found.push((Node::Obj(obj.start), sym, false));
            }
        }
        Ok(())
    }

    /// The thread-local at `offset` of the TLS block is reached.
    fn tls(&mut self, offset: u64, node: Node, root: usize) {
        let Some(sym) = self.syms.tls_at(offset) else {
            return;
        };
        let key = Node::Tls(sym.start);
        if !self.seen.contains_key(&key) {
            self.visit(key, root, Some(node));
            self.found.push((key, sym, true));
        }
    }

    /// A general-dynamic GOT pair at `got`: the module, then the offset.
    fn tls_pair(&mut self, got: u64, node: Node, root: usize) {
        if let Some(offset) = self.tls_offset_word(got.wrapping_add(8)) {
            self.tls(offset, node, root);
        }
    }

    /// The TLS offset the word at `at` will hold: its relocation's, or what
    /// the file stores there (the linker's, for a variable of the patch).
    fn tls_offset_word(&self, at: u64) -> Option<u64> {
        match self.image.reloc_target(at) {
            Some(RelocTarget::TlsOffset(o)) => Some(o),
            Some(_) => None,
            None => self.image.stored_word(at),
        }
    }

    /// Follows the relocations in `[start, end)` (of the object `from`).
    fn relocations(
        &mut self,
        start: u64,
        end: u64,
        from: &str,
        node: Node,
        root: usize,
    ) -> Result<(), ReachError> {
        let targets: Vec<(u64, RelocTarget)> = self.image.reloc_targets(start, end).collect();
        for (at, t) in targets {
            match t {
                RelocTarget::Address(a) => self.address(a, from, node, root)?,
                RelocTarget::TlsOffset(o) => self.tls(o, node, root),
                RelocTarget::TlsModule => self.tls_pair(at, node, root),
                RelocTarget::External => {}
            }
        }
        Ok(())
    }
}

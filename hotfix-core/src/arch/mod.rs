//! The architecture-neutral face of the machine-code layer.
//!
//! Types shared by every architecture live here; each architecture module
//! provides the same items, re-exported below for the target being built:
//!
//! * entry stubs: `check_entry`, `redirect_entry`, `restore_entry`, `ENTRY_PAD_LEN`;
//! * trampolines: `plan_trampoline(&FunctionImage) -> TrampolinePlan`;
//! * processor: `serialize_core`, `context_pc_sp` (signal context), and
//!   `check_jump_target`;
//! * register use: `untouched_caller_saved` (what callers optimised with
//!   inter-procedural register allocation may keep across a call) and
//!   `is_plt_stub`;
//! * references: `code_refs` (what a function's code calls, jumps to and
//!   refers to, as [`CodeRef`]s, for the walk over a patch's call graph).
//!
//! A new architecture adds `arch/<name>/` with those items and one `cfg` line here.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use self::x86_64::reloc;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::{
    ENTRY_PAD_LEN, ScratchRegister, TrampolinePlan, check_entry, check_jump_target, code_refs,
    context_pc_sp, is_plt_stub, plan_trampoline, redirect_entry, restore_entry, serialize_core,
    set_entries, untouched_caller_saved,
};

/// What one instruction of a function refers to (see `code_refs`). Addresses
/// are those of the file the code was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeRef {
    /// A direct call or jump to this address (inside the function or not).
    Branch(u64),
    /// Memory at this address: its address is taken, it is read or written, or
    /// control goes through the pointer stored there (`call [rip+x]`).
    Memory(u64),
    /// The argument of a thread-local lookup: the TLS GOT entry at `got` is
    /// passed to the call that follows. General dynamic (the entry names the
    /// variable) or local dynamic (the entry names the module;
    /// [`CodeRef::TlsOffset`]s follow).
    TlsLookup {
        /// The GOT entry.
        got: u64,
        /// Whether it is the general-dynamic sequence.
        general: bool,
    },
    /// An offset applied to the block the last local-dynamic
    /// [`CodeRef::TlsLookup`] returned: a thread-local at that offset of the
    /// module's TLS block.
    TlsOffset(i64),
    /// The block the last local-dynamic [`CodeRef::TlsLookup`] returned
    /// escapes where its uses cannot be followed: any thread-local of the
    /// module may be accessed through it.
    TlsUnresolved,
}

/// Why `code_refs` could not classify a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefsError {
    /// The instruction budget ran out.
    OverBudget,
    /// The bytes at this address are no valid instruction.
    Undecodable {
        /// Where.
        at: u64,
    },
}

/// The state of a patchable entry stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// Calls run the function through its slot.
    Unpatched,
    /// Calls jump to this address.
    Redirected(usize),
}

/// Whether a function is known to take a variable argument list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variadic {
    /// Proven fixed-arity (a demangled C++ signature without `...`).
    No,
    /// Takes `...`.
    Yes,
    /// Nothing proves it either way (a C symbol): treated as variadic.
    Unknown,
}

/// A piece of code that belongs to a function but has its own symbol
/// (`foo.cold`, `foo.part.0`): its branches may land in the function's window.
#[derive(Clone, Debug)]
pub struct FragmentImage<'a> {
    /// Its symbol.
    pub name: &'a str,
    /// Its runtime address.
    pub address: usize,
    /// Its bytes (verified equal to the file).
    pub bytes: &'a [u8],
}

/// The original machine code of one function, as the planner sees it.
#[derive(Clone, Debug)]
pub struct FunctionImage<'a> {
    /// Its symbol, for messages.
    pub symbol: &'a str,
    /// Its runtime address.
    pub address: usize,
    /// All its bytes, `size` of the symbol table (verified equal to the file).
    pub bytes: &'a [u8],
    /// Whether it is variadic.
    pub variadic: Variadic,
    /// Its split-off fragments.
    pub fragments: Vec<FragmentImage<'a>>,
}

//! Everything the machine-code layer refuses, each with what was refused and why.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Bytes shown as space-separated hex (`66 90`) in error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Display for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{self}]")
    }
}

impl From<&[u8]> for HexBytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

/// A refusal of the machine-code layer. Nothing was written when one of these is
/// returned, except where a variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    // ----- entry stubs (NOP-padded entries) -----
    /// The entry stub holds bytes that are neither the unpatched nor the redirected
    /// layout: a debugger's breakpoint, another tool's hook, or not a patchable entry.
    #[error(
        "entry stub at {entry:#x} holds unexpected bytes: pad+entry [{found}], expected {expected}"
    )]
    UnexpectedEntryBytes {
        /// Address of the 2-byte entry instruction.
        entry: usize,
        /// The 16 bytes found: 14-byte pad followed by the 2-byte entry.
        found: HexBytes,
        /// What was expected there, in words.
        expected: &'static str,
    },
    /// The entry address is not placed as the layout requires (entry at offset 14
    /// of a 16-byte aligned block).
    #[error("entry {entry:#x} is not at offset 14 of a 16-byte aligned block")]
    MisalignedEntry {
        /// The address given.
        entry: usize,
    },

    // ----- trampoline planning (foreign functions) -----
    /// The function is shorter than the bytes the jump needs.
    #[error(
        "function {symbol} at {address:#x} is {size} bytes, the trampoline needs {needed} (would overwrite its neighbour)"
    )]
    FunctionTooShort {
        /// The symbol refused.
        symbol: String,
        /// Its runtime address.
        address: usize,
        /// Its size from the symbol table.
        size: usize,
        /// Bytes needed: kept `endbr64` plus the jump.
        needed: usize,
    },
    /// A branch somewhere in the function (or in one of its fragments) lands strictly
    /// inside the window: after patching it would land in the middle of the jump.
    #[error(
        "function {symbol}: branch at {from:#x} targets {target:#x}, inside the patch window {window_start:#x}..{window_end:#x}"
    )]
    BranchIntoWindow {
        /// The symbol refused.
        symbol: String,
        /// Address of the branch instruction.
        from: usize,
        /// Where it branches to.
        target: usize,
        /// First byte of the window.
        window_start: usize,
        /// One past the last byte of the window.
        window_end: usize,
    },
    /// An instruction takes the address of a byte strictly inside the window
    /// (`lea reg, [rip+x]`, a RIP-relative load): code could jump there later.
    #[error(
        "function {symbol}: instruction at {at:#x} references {target:#x}, inside the patch window {window_start:#x}..{window_end:#x}"
    )]
    AddressIntoWindow {
        /// The symbol refused.
        symbol: String,
        /// Address of the instruction.
        at: usize,
        /// The address it references.
        target: usize,
        /// First byte of the window.
        window_start: usize,
        /// One past the last byte of the window.
        window_end: usize,
    },
    /// A call inside the window returns into the middle of the window: a thread
    /// inside the callee would return into the middle of the jump.
    #[error(
        "function {symbol}: call at {call_at:#x} inside the patch window returns to {return_to:#x}, inside the window"
    )]
    CallInWindow {
        /// The symbol refused.
        symbol: String,
        /// Address of the call instruction.
        call_at: usize,
        /// Its return address.
        return_to: usize,
    },
    /// The function jumps through a register or a computed address (a jump table):
    /// its targets cannot be proven to stay out of the window.
    #[error(
        "function {symbol}: indirect jump at {at:#x} ({instruction}) has targets that cannot be proven outside the window"
    )]
    IndirectJump {
        /// The symbol refused.
        symbol: String,
        /// Address of the jump.
        at: usize,
        /// The instruction, disassembled.
        instruction: String,
    },
    /// Bytes of the function could not be decoded as whole instructions.
    #[error("function {symbol}: undecodable instruction at {at:#x}: [{bytes}]")]
    UndecodableInstruction {
        /// The symbol refused.
        symbol: String,
        /// Where decoding failed.
        at: usize,
        /// The bytes there.
        bytes: HexBytes,
    },
    /// The function's bytes in memory are not the bytes of the ELF file on disk: a
    /// breakpoint (`cc`), another tool's hook, or self-modified code.
    #[error(
        "function {symbol}: memory at {at:#x} holds [{found}], the ELF file {} holds [{expected}]", file.display()
    )]
    NotOriginalBytes {
        /// The symbol refused.
        symbol: String,
        /// First differing address.
        at: usize,
        /// Bytes found in memory from there.
        found: HexBytes,
        /// Bytes of the file from there.
        expected: HexBytes,
        /// The file compared with.
        file: PathBuf,
    },
    /// The jump target is not in executable memory of this process.
    #[error("jump target {target:#x} is not in an executable mapping")]
    TargetNotExecutable {
        /// The target given.
        target: usize,
    },
    /// The jump target lies inside the function being patched: the trampoline
    /// would jump into itself (e.g. the linker folded identical replacement and
    /// original into one function).
    #[error(
        "jump target {target:#x} lies inside {symbol} itself ({function:#x}..{end:#x}): the replacement is the function it replaces (identical code folded?)"
    )]
    TargetInsideFunction {
        /// The function patched.
        symbol: String,
        /// Its first byte.
        function: usize,
        /// One past its last byte.
        end: usize,
        /// The target given.
        target: usize,
    },
    /// Indirect-branch tracking is enforced and the target does not start with `endbr64`.
    #[error(
        "indirect-branch tracking is on and jump target {target:#x} does not start with endbr64"
    )]
    TargetLacksEndbr {
        /// The target given.
        target: usize,
    },

    // ----- writing code -----
    /// Memory does not hold the bytes the edit expects to replace.
    #[error("code at {addr:#x} holds [{found}], expected [{expected}]; nothing was written")]
    BytesChanged {
        /// Address of the edit.
        addr: usize,
        /// Bytes found.
        found: HexBytes,
        /// Bytes expected.
        expected: HexBytes,
    },
    /// An edit is malformed (length mismatch, overlap, empty, address overflow).
    #[error("invalid code edit at {addr:#x}: {reason}")]
    InvalidEdit {
        /// Address of the edit.
        addr: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The range is not (entirely) mapped in this process.
    #[error("{addr:#x}..{end:#x} is not mapped in this process", end = addr.saturating_add(*len))]
    NotMapped {
        /// Start of the range.
        addr: usize,
        /// Its length.
        len: usize,
    },
    /// The range is mapped but is not readable executable code.
    #[error("{addr:#x} is in a mapping with permissions {perms}, not readable executable code")]
    NotCode {
        /// The address.
        addr: usize,
        /// The mapping's permissions as in /proc/self/maps.
        perms: String,
    },
    /// The system refused to make the code writable (EACCES under SELinux `execmod`,
    /// PaX MPROTECT, EPERM on sealed memory). Nothing was written.
    #[error(
        "the system refused to make code {addr:#x}..{end:#x} writable: {source}; nothing was written", end = addr.saturating_add(*len)
    )]
    ProtectFailed {
        /// Start of the page range.
        addr: usize,
        /// Its length.
        len: usize,
        /// The error of `mprotect`.
        #[source]
        source: io::Error,
    },
    /// Making code writable failed part-way and putting back the pages already
    /// made writable failed too: nothing was written, but those pages are left
    /// `rwx`.
    #[error(
        "the system refused to make code {addr:#x}..{end:#x} writable: {source}; nothing was written, \
         but pages {left_addr:#x}..{left_end:#x} made writable before could not be given back protection {perms} ({restore_error}) and are left rwx: restart the process if W^X matters", end = addr.saturating_add(*len), left_end = left_addr.saturating_add(*left_len)
    )]
    ProtectFailedLeftWritable {
        /// Start of the page range that could not be made writable.
        addr: usize,
        /// Its length.
        len: usize,
        /// The error of `mprotect`.
        #[source]
        source: io::Error,
        /// Start of the page range left writable.
        left_addr: usize,
        /// Its length.
        left_len: usize,
        /// The protection it should have.
        perms: String,
        /// Why restoring it failed.
        restore_error: io::Error,
    },
    /// The code WAS written but a page's previous protection could not be restored.
    #[error(
        "code was written but restoring protection {perms} of {addr:#x}..{end:#x} failed: {source}; the pages are left rwx", end = addr.saturating_add(*len)
    )]
    ProtectRestoreFailed {
        /// Start of the page range.
        addr: usize,
        /// Its length.
        len: usize,
        /// The protection that could not be restored.
        perms: String,
        /// The error of `mprotect`.
        #[source]
        source: io::Error,
    },

    /// Callers of a local or hidden function may keep values in registers the
    /// function leaves untouched (GCC `-fipa-ra`); the replacement may clobber them.
    #[error(
        "{symbol} in {} is local or hidden and leaves caller-saved registers {registers} untouched, so its callers, \
         compiled knowing that (GCC -fipa-ra at -O2, or LTO), may keep values there across the call; a replacement \
         following the plain ABI may clobber them, so it is refused. Patch its callers instead, or give the function \
         default visibility and rebuild", object.display()
    )]
    CallersMayKeepRegisters {
        /// The function.
        symbol: String,
        /// The object defining it.
        object: PathBuf,
        /// The registers, comma-separated.
        registers: String,
    },

    // ----- stopping threads -----
    /// A thread stayed inside a window (or held a return address into it) on every try.
    #[error(
        "thread {tid} was inside the code window {window_start:#x}..{window_end:#x} (at {pc:#x}) on all {attempts} tries; nothing was written"
    )]
    ThreadBusy {
        /// The thread id.
        tid: i32,
        /// Its instruction pointer, or the return address found on its stack.
        pc: usize,
        /// First byte of the window.
        window_start: usize,
        /// One past the last byte of the window.
        window_end: usize,
        /// How many times it was tried.
        attempts: u32,
    },
    /// A thread did not stop in time (it blocks the stop signal or is traced).
    #[error("thread {tid} did not stop within {waited_ms} ms ({reason}); nothing was written")]
    ThreadNotStopped {
        /// The thread id.
        tid: i32,
        /// How long it was waited for.
        waited_ms: u64,
        /// What is known about why.
        reason: String,
    },
    /// Threads block the stop signal (the `sigwait` pattern), so they would never
    /// stop: refused before any thread was stopped.
    #[error(
        "thread(s) {threads} block the stop signal {signal}, so code cannot be written while they are held outside it; nothing was written. \
         Let the stop signal through in those threads (unblock SIGRTMAX-3 in their mask), or patch with the slot strategy only"
    )]
    ThreadBlocksStopSignal {
        /// `tid (name)` of each, comma-separated.
        threads: String,
        /// The stop signal.
        signal: i32,
    },
    /// The mappings kept changing between planning a write and stopping every
    /// thread (a library loaded or closed, a stack mapped, on every try).
    #[error(
        "the process's mappings changed on all {attempts} tries to write code; nothing was written. Try again when the process is quieter"
    )]
    MapsUnstable {
        /// How many times it was tried.
        attempts: u32,
    },
    /// The signal used to stop threads already has a handler installed by someone else.
    #[error("signal {signal} used to stop threads already has another handler")]
    SignalInUse {
        /// The signal number.
        signal: i32,
    },
    /// A system call the layer needs failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The call that failed.
        call: &'static str,
        /// Its error.
        #[source]
        source: io::Error,
    },

    // ----- symbols -----
    /// No loaded object defines a function of that name.
    #[error("no function named {name:?} in the executable or any loaded library")]
    SymbolNotFound {
        /// The name looked up.
        name: String,
    },
    /// Several distinct functions match the name.
    #[error("{name:?} names several functions: {}", candidates.join(", "))]
    AmbiguousSymbol {
        /// The name looked up.
        name: String,
        /// `symbol @ object` of each candidate.
        candidates: Vec<String>,
    },
    /// The symbol cannot be patched as a function (IFUNC resolver, zero size, no
    /// file bytes).
    #[error("symbol {name} in {}: {reason}", object.display())]
    UnsupportedSymbol {
        /// The symbol.
        name: String,
        /// The object defining it.
        object: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An object's ELF file could not be read or parsed.
    #[error("cannot read ELF file {}: {reason}", path.display())]
    ElfRead {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file on disk is not the one loaded (different GNU build-id).
    #[error(
        "{} on disk has build-id {on_disk}, the loaded object has {loaded}: the file was replaced", path.display()
    )]
    BuildIdMismatch {
        /// The file.
        path: PathBuf,
        /// Build-id of the file.
        on_disk: HexBytes,
        /// Build-id of the loaded object.
        loaded: HexBytes,
    },

    // ----- patch stacks -----
    /// The patch id is not applied on this function.
    #[error("patch {id} is not applied on {symbol}")]
    UnknownPatch {
        /// The symbol.
        symbol: String,
        /// The id given.
        id: u64,
    },
    /// A prepared edit no longer matches the patch stack (it changed in between).
    #[error("prepared edit for {symbol} is stale: the patch stack changed since it was prepared")]
    StaleEdit {
        /// The symbol.
        symbol: String,
    },
}

impl CodeError {
    /// A failed system call, with the current `errno`.
    pub(crate) fn last_os(call: &'static str) -> Self {
        Self::Os {
            call,
            source: io::Error::last_os_error(),
        }
    }
}

//! Linked patches made by hand in this process (`object::write`), replacing
//! `#[patchable]` functions of this very binary: a valid one applies and
//! reverts, its relocations resolve against the host's own symbols; every
//! damaged or dishonest one is refused by name, leaving the host as it was
//! and nothing mapped; and thousands of mutations of a valid one are checked
//! without a panic, a crash, a mapping or a descriptor left behind.

use hotfix_core::linked::check_bytes;
use hotfix_core::{Error, Runtime};
use hotfix_tests::linked_patch::{
    Extra, Layout, RELA, REPLACEMENT, Reloc, Spec, desc, get_u64, put_u32, put_u64, r, shdr,
    symbol_at, write_patch,
};
use hotfix_tests::{mappings, open_fds, scratch_dir, serial};
use object::{SectionKind, elf};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

#[hotfix_core::patchable]
fn answer() -> u64 {
    40
}

#[hotfix_core::patchable]
fn relocated() -> u64 {
    5
}

#[hotfix_core::patchable]
fn process_id() -> u32 {
    0
}

/// What a replacement calls in the host, by its mangled name.
#[inline(never)]
fn host_helper() -> u64 {
    std::hint::black_box(7)
}

/// What a replacement reads in the host, by its mangled name.
static HOST_ADDEND: AtomicU64 = AtomicU64::new(1000);

const ANSWER: &str = "linked_refuse::answer";

/// `mov eax, 42; ret`.
const RET_42: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];

/// `sub rsp, 8; call <rel32 at 5>; add rsp, 8; ret`.
const CALL: [u8; 14] = [
    0x48, 0x83, 0xec, 0x08, 0xe8, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x08, 0xc3,
];

/// `sub rsp, 8; call <rel32 at 5>; add rsp, 8; add rax, [rip + <rel32 at 16>]; ret`.
const CALL_ADD: [u8; 21] = [
    0x48, 0x83, 0xec, 0x08, 0xe8, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x08, 0x48, 0x03, 0x05, 0, 0, 0, 0,
    0xc3,
];

fn helper_name() -> String {
    symbol_at(host_helper as fn() -> u64 as usize).name
}

fn addend_name() -> String {
    symbol_at(&HOST_ADDEND as *const AtomicU64 as usize).name
}

/// Mappings within 4 GiB of this executable's code: where the loader maps a
/// linked patch. (Thread stacks and the allocator's arenas, which other
/// tests' threads make at any time, lie far from it.)
fn near_mappings() -> usize {
    let here = answer as fn() -> u64 as usize as u64;
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
        .filter(|start| start.abs_diff(here) < 1 << 32)
        .count()
}

/// A patch replacing `answer` with `mov eax, 42; ret`.
fn ret_42() -> Spec {
    Spec::replacing(ANSWER, &RET_42)
}

/// A patch replacing `answer` with a call of `host_helper` (7), by its name.
fn calls_helper() -> Spec {
    let mut spec = Spec::replacing(ANSWER, &CALL);
    spec.code[0].relocs.push(Reloc {
        offset: 5,
        symbol: helper_name(),
        r_type: r::PLT32,
        addend: -4,
    });
    spec
}

/// A patch replacing `relocated` with `host_helper() + HOST_ADDEND` and
/// `process_id` with libc's `getpid()`, every reference by name.
fn relocating() -> Spec {
    let mut spec = Spec::replacing("linked_refuse::relocated", &CALL_ADD);
    spec.code[0].relocs = vec![
        Reloc {
            offset: 5,
            symbol: helper_name(),
            r_type: r::PLT32,
            addend: -4,
        },
        Reloc {
            offset: 16,
            symbol: addend_name(),
            r_type: r::PC32,
            addend: -4,
        },
    ];
    spec.also_replace("linked_refuse::process_id", "hotfix_test_pid", &CALL)
        .relocs
        .push(Reloc {
            offset: 5,
            symbol: "getpid".into(),
            r_type: r::PLT32,
            addend: -4,
        });
    spec
}

/// The host as it was: `answer` the shipped one, no patch applied.
fn unchanged() {
    assert_eq!(answer(), 40, "answer was changed");
    let f: fn() -> u64 = answer;
    assert_eq!(std::hint::black_box(f)(), 40);
    assert!(
        Runtime::global().status().patches.is_empty(),
        "a patch is applied"
    );
    assert_eq!(
        desc(ANSWER).slot.load(Ordering::Acquire) as *const (),
        desc(ANSWER).unpatched,
        "answer's slot was changed"
    );
}

/// Applies `bytes` as a patch file: it must be refused, saying `says`, with
/// the host unchanged and no mapping or descriptor left; `check_bytes`
/// refuses it the same way. Returns the error.
fn refused(dir: &std::path::Path, name: &str, bytes: &[u8], says: &str) -> Error {
    warm_up(dir);
    let path = write_patch(dir, name, bytes);
    let (maps0, fds0) = (near_mappings(), open_fds());
    let err = Runtime::global()
        .apply(&path)
        .expect_err(&format!("{name} was applied"));
    let (maps1, fds1) = (near_mappings(), open_fds());
    let msg = err.to_string();
    assert!(msg.contains(says), "{name}: {msg}\ndoes not say: {says}");
    unchanged();
    assert!(
        maps1 <= maps0,
        "{name}: mappings near the executable grew from {maps0} to {maps1}"
    );
    assert!(
        fds1 <= fds0,
        "{name}: descriptors grew from {fds0} to {fds1}"
    );
    let checked = check_bytes(bytes).expect_err(&format!("check_bytes accepted {name}"));
    assert!(
        checked.to_string().contains(says),
        "{name}: check_bytes said: {checked}"
    );
    err
}

/// Runs the loader's walk once, refused, so what its first run allocates for
/// good (the host's symbol table, the runtime) is not counted as a leak.
fn warm_up(dir: &std::path::Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut spec = calls_helper();
        spec.code[0].relocs[0].r_type = r::R_32;
        let path = write_patch(dir, "warm-up.o", &spec.build());
        assert!(Runtime::global().apply(&path).is_err());
        assert!(check_bytes(&spec.build()).is_err());
    });
}

fn dir(name: &str) -> PathBuf {
    scratch_dir(&format!("linked-{name}"))
}

#[test]
fn a_hand_made_linked_patch_applies_and_reverts() {
    let _g = serial();
    let dir = dir("apply");
    let before: fn() -> u64 = answer;
    unchanged();
    let bytes = ret_42().build();
    check_bytes(&bytes).expect("check_bytes accepts it");
    unchanged();
    let path = write_patch(&dir, "ret42.o", &bytes);
    let status = Runtime::global().apply(&path).expect("apply");
    assert_eq!(status.name, "hand-made");
    assert_eq!(status.targets, vec![ANSWER.to_owned()]);
    assert_eq!(answer(), 42, "by name");
    assert_eq!(std::hint::black_box(before)(), 42, "through a pointer");
    let live = Runtime::global().status();
    assert_eq!(
        live.live(ANSWER).map(|f| f.patch.as_str()),
        Some("hand-made")
    );
    Runtime::global().revert_newest().expect("revert");
    unchanged();
    assert_eq!(std::hint::black_box(before)(), 40);

    // Applied again, the patch loaded before is bound again: nothing more is
    // mapped.
    let near = near_mappings();
    Runtime::global().apply(&path).expect("apply again");
    assert_eq!((answer(), std::hint::black_box(before)()), (42, 42));
    assert_eq!(near_mappings(), near, "the patch was mapped a second time");
    Runtime::global().revert_newest().expect("revert again");
    unchanged();
}

#[test]
fn relocations_resolve_against_the_hosts_symbols_by_name() {
    let _g = serial();
    let dir = dir("relocs");
    assert_eq!((relocated(), process_id()), (5, 0));
    let spec = relocating();
    assert!(
        spec.code[0].relocs[0].symbol.starts_with("_ZN")
            && spec.code[0].relocs[1].symbol.starts_with("_ZN"),
        "host symbols are referenced by their mangled names: {:?}",
        spec.code[0].relocs
    );
    let path = write_patch(&dir, "relocating.o", &spec.build());
    Runtime::global().apply(&path).expect("apply");
    HOST_ADDEND.store(1000, Ordering::Relaxed);
    assert_eq!(relocated(), 1007, "host_helper() + HOST_ADDEND");
    HOST_ADDEND.store(2000, Ordering::Relaxed);
    assert_eq!(
        relocated(),
        2007,
        "the replacement reads the host's static itself"
    );
    assert_eq!(
        process_id(),
        std::process::id(),
        "libc's getpid, through a stub"
    );
    Runtime::global().revert_newest().expect("revert");
    HOST_ADDEND.store(1000, Ordering::Relaxed);
    assert_eq!((relocated(), process_id()), (5, 0));
}

#[test]
fn a_call_of_a_host_function_by_name_applies() {
    let _g = serial();
    let dir = dir("call");
    let path = write_patch(&dir, "calls.o", &calls_helper().build());
    Runtime::global().apply(&path).expect("apply");
    assert_eq!(answer(), 7, "the replacement called host_helper");
    Runtime::global().revert_newest().expect("revert");
    unchanged();
}

#[test]
fn a_proof_that_is_not_the_hosts_code_is_refused() {
    let _g = serial();
    let dir = dir("proof");
    let mut spec = ret_42();
    let at = spec.base.len() / 2;
    spec.base[at] ^= 0x40;
    let host = &spec.registry.proof[0].symbol.clone();
    let err = refused(
        &dir,
        "edited.o",
        &spec.build(),
        &format!("its code differs at offset {at:#x}"),
    );
    let msg = err.to_string();
    assert!(matches!(err, Error::LinkedUnproven { .. }), "{msg}");
    assert!(msg.contains(host.as_str()), "names the symbol: {msg}");
    assert!(
        msg.contains("linked_refuse::__hotfix_original_answer"),
        "names the function: {msg}"
    );

    let mut spec = ret_42();
    spec.registry.proof[0].size -= 1;
    spec.base.pop();
    refused(&dir, "shorter.o", &spec.build(), "bytes in the host and");

    let mut spec = ret_42();
    let absent = "_ZN13linked_refuse9not_there17h0123456789abcdefE";
    spec.registry
        .proof
        .push(hotfix_core::linked::format::Proof {
            symbol: absent.into(),
            offset: 0,
            size: 1,
            relocs: vec![],
        });
    let err = refused(&dir, "absent.o", &spec.build(), "has no such function");
    assert!(err.to_string().contains(absent), "{err}");

    let mut spec = ret_42();
    spec.registry.proof[0].offset = spec.base.len() as u64;
    refused(
        &dir,
        "outside.o",
        &spec.build(),
        "lie outside the patch's base section",
    );
}

#[test]
fn an_unresolvable_or_unlinkable_reference_is_refused() {
    let _g = serial();
    let dir = dir("unresolved");
    let mut spec = calls_helper();
    let missing = "_ZN13linked_refuse7missing17h0123456789abcdefE";
    spec.code[0].relocs[0].symbol = missing.into();
    let err = refused(&dir, "missing.o", &spec.build(), "does not have it");
    assert!(err.to_string().contains(missing), "{err}");

    let mut spec = calls_helper();
    spec.code[0].relocs[0].r_type = r::GOTOFF64;
    refused(
        &dir,
        "gotoff.o",
        &spec.build(),
        "relocation type 25, which the linker does not take",
    );

    // Refused by the link itself, once the patch is mapped: it is unmapped.
    assert!(
        host_helper as fn() -> u64 as usize > u32::MAX as usize,
        "the host is a PIE above 4 GiB"
    );
    let mut spec = calls_helper();
    spec.code[0].relocs[0].r_type = r::R_32;
    spec.code[0].relocs[0].addend = 0;
    refused(
        &dir,
        "abs32.o",
        &spec.build(),
        "R_X86_64_32 at 0x5 of .text.hotfix_test_linked_replacement: the address does not fit in 32 bits",
    );
}

#[test]
fn relocation_entries_edited_by_hand_are_refused() {
    let _g = serial();
    let dir = dir("rela");
    let good = calls_helper().build();
    check_bytes(&good).expect("unedited, it is accepted");
    let layout = Layout::of(&good);
    let text = format!(".text.{REPLACEMENT}");
    let rela = layout.range(&format!(".rela{text}"));
    assert_eq!(rela.len(), RELA);

    let mut past = good.clone();
    put_u64(&mut past, rela.start, CALL.len() as u64 - 2);
    refused(
        &dir,
        "past.o",
        &past,
        &format!("a relocation at 0xc lies outside section {text}"),
    );
    let mut far = good.clone();
    put_u64(&mut far, rela.start, u64::MAX - 1);
    refused(&dir, "far.o", &far, "lies outside section");

    let mut sym = good.clone();
    let info = get_u64(&sym, rela.start + 8);
    put_u64(
        &mut sym,
        rela.start + 8,
        (9999 << 32) | (info & 0xffff_ffff),
    );
    refused(&dir, "sym.o", &sym, "names symbol 9999 that is missing");
}

#[test]
fn a_relocation_section_the_loader_cannot_read_is_refused_not_skipped() {
    let _g = serial();
    let dir = dir("rela-section");
    let good = calls_helper().build();
    let layout = Layout::of(&good);
    let name = format!(".rela.text.{REPLACEMENT}");
    let h = layout.header(&name);

    let mut outside = good.clone();
    put_u64(&mut outside, h + shdr::OFFSET, 1 << 40);
    refused(&dir, "outside.o", &outside, &name);
    let mut partial = good.clone();
    put_u64(&mut partial, h + shdr::SIZE, RELA as u64 + 1);
    refused(&dir, "partial.o", &partial, &name);
    let mut other_table = good.clone();
    put_u32(
        &mut other_table,
        h + shdr::LINK,
        layout.index(".strtab") as u32,
    );
    refused(&dir, "link.o", &other_table, &name);
    let mut rel = good.clone();
    put_u32(&mut rel, h + shdr::TYPE, elf::SHT_REL);
    refused(&dir, "rel.o", &rel, &name);
    let mut unknown = good.clone();
    put_u32(&mut unknown, h + shdr::TYPE, 0x1234);
    refused(
        &dir,
        "unknown.o",
        &unknown,
        &format!("section {name} is of type 0x1234, which a linked patch does not have"),
    );
    let mut untyped = good.clone();
    put_u32(&mut untyped, h + shdr::TYPE, elf::SHT_PROGBITS);
    refused(&dir, "untyped.o", &untyped, &name);
    let mut elsewhere = good.clone();
    put_u32(
        &mut elsewhere,
        h + shdr::INFO,
        layout.index(".hotfix.base") as u32,
    );
    refused(&dir, "elsewhere.o", &elsewhere, &name);
}

#[test]
fn a_section_outside_the_file_is_refused() {
    let _g = serial();
    let dir = dir("section");
    let good = ret_42().build();
    let layout = Layout::of(&good);
    let text = format!(".text.{REPLACEMENT}");
    let h = layout.header(&text);
    let mut off = good.clone();
    put_u64(&mut off, h + shdr::OFFSET, good.len() as u64 - 2);
    refused(
        &dir,
        "offset.o",
        &off,
        &format!("section {text} lies outside the file"),
    );
    let mut size = good.clone();
    put_u64(&mut size, h + shdr::SIZE, 1 << 40);
    refused(
        &dir,
        "size.o",
        &size,
        &format!("section {text} lies outside the file"),
    );
    let mut reg = good.clone();
    put_u64(
        &mut reg,
        layout.header(".hotfix.registry") + shdr::SIZE,
        1 << 40,
    );
    refused(
        &dir,
        "registry.o",
        &reg,
        "section .hotfix.registry lies outside the file",
    );
}

fn with_extra(name: &str, kind: SectionKind, sh_flags: u32, symbol: Option<&str>) -> Vec<u8> {
    let mut spec = ret_42();
    spec.extra.push(Extra {
        name: name.into(),
        kind,
        sh_flags,
        data: vec![0; 8],
        symbol: symbol.map(str::to_owned),
    });
    spec.build()
}

#[test]
fn sections_a_patch_must_not_carry_are_refused() {
    let _g = serial();
    let dir = dir("sections");
    let (alloc, write, tls) = (elf::SHF_ALLOC, elf::SHF_WRITE, elf::SHF_TLS);
    let tdata = with_extra(".tdata", SectionKind::Tls, alloc | write | tls, Some("tl"));
    refused(
        &dir,
        "tdata.o",
        &tdata,
        "section .tdata holds a new thread-local",
    );
    let tbss = with_extra(
        ".tbss",
        SectionKind::UninitializedTls,
        alloc | write | tls,
        Some("tl"),
    );
    refused(
        &dir,
        "tbss.o",
        &tbss,
        "section .tbss holds a new thread-local",
    );
    let init = with_extra(".init_array", SectionKind::Data, alloc | write, None);
    refused(
        &dir,
        "init.o",
        &init,
        "section .init_array would run code at load",
    );
    let init = with_extra(".init_array.00100", SectionKind::Data, alloc | write, None);
    refused(&dir, "init-prio.o", &init, "would run code at load");

    // A private copy of the host's state: the host's static, defined again.
    let host_static = addend_name();
    for (section, kind) in [
        (".data.shadow", SectionKind::Data),
        (".bss.shadow", SectionKind::UninitializedData),
    ] {
        let copy = with_extra(section, kind, alloc | write, Some(&host_static));
        let err = refused(
            &dir,
            "shadow.o",
            &copy,
            "the patch carries its own copy of this static of the running host",
        );
        assert!(err.to_string().contains(&host_static), "{err}");
    }
}

#[test]
fn a_registry_edited_by_hand_is_refused() {
    let _g = serial();
    let dir = dir("registry");
    let good = ret_42().build();
    let reg = Layout::of(&good).range(".hotfix.registry");
    let edit = |at: usize, value: u32| {
        let mut b = good.clone();
        put_u32(&mut b, reg.start + at, value);
        b
    };
    let mut magic = good.clone();
    magic[reg.start] ^= 1;
    refused(
        &dir,
        "magic.o",
        &magic,
        "its registry: it does not start with the registry magic",
    );
    refused(
        &dir,
        "format.o",
        &edit(8, 3),
        "it is of format 3; this runtime reads linked patches of format 2",
    );
    let len = (reg.len() - 16) as u32;
    refused(&dir, "long.o", &edit(12, len + 1), "the section ends first");
    refused(&dir, "huge.o", &edit(12, u32::MAX), "over the limit");
    refused(
        &dir,
        "short.o",
        &edit(12, len - 1),
        "its contents do not parse",
    );
    let mut json = good.clone();
    json[reg.start + 16] = b'[';
    refused(&dir, "json.o", &json, "its contents do not parse");
}

#[test]
fn a_registry_that_does_not_fit_the_host_is_refused() {
    let _g = serial();
    let dir = dir("fit");
    let mut spec = ret_42();
    spec.registry.replace[0].path = "linked_refuse::no_such_function".into();
    refused(
        &dir,
        "path.o",
        &spec.build(),
        "cannot replace linked_refuse::no_such_function: the host has no #[patchable] function of this path",
    );

    let mut spec = ret_42();
    spec.extra.push(Extra {
        name: ".rodata.value".into(),
        kind: SectionKind::ReadOnlyData,
        sh_flags: elf::SHF_ALLOC,
        data: vec![0xc3; 8],
        symbol: Some("hotfix_test_data".into()),
    });
    spec.registry.replace[0].symbol = "hotfix_test_data".into();
    refused(
        &dir,
        "data.o",
        &spec.build(),
        "its replacement hotfix_test_data is not a function the patch carries",
    );
    let mut spec = ret_42();
    spec.registry.replace[0].symbol = "hotfix_test_nowhere".into();
    refused(
        &dir,
        "nowhere.o",
        &spec.build(),
        "its replacement hotfix_test_nowhere is not a function the patch carries",
    );

    // The proven function is not the one the slot runs.
    let mut spec = ret_42();
    let helper = symbol_at(host_helper as fn() -> u64 as usize);
    spec.prove(&helper);
    spec.registry.replace[0].host_symbol = helper.name.clone();
    refused(
        &dir,
        "other.o",
        &spec.build(),
        "is not the function the slot runs unpatched",
    );
    let mut spec = ret_42();
    spec.registry.replace[0].host_symbol = helper.name;
    refused(&dir, "unproven.o", &spec.build(), "is not proven");

    let mut spec = ret_42();
    let again = spec.registry.replace[0].clone();
    spec.registry.replace.push(again);
    refused(
        &dir,
        "twice.o",
        &spec.build(),
        "the patch replaces it twice",
    );

    let mut spec = ret_42();
    spec.registry.host.rustc = "rustc 1.0.0 (a59807a8b 2015-05-13)".into();
    let err = refused(
        &dir,
        "rustc.o",
        &spec.build(),
        "was built by another compiler",
    );
    assert!(
        err.to_string()
            .contains("rustc 1.0.0 (a59807a8b 2015-05-13)"),
        "{err}"
    );
    let mut spec = ret_42();
    spec.registry.host.target = "aarch64-unknown-linux-gnu".into();
    refused(
        &dir,
        "target.o",
        &spec.build(),
        "was built by another target",
    );

    let mut spec = ret_42();
    spec.registry.replace.clear();
    refused(&dir, "empty.o", &spec.build(), "replaces no function");
}

/// xorshift64: a fixed sequence, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A value a parser is likely to mishandle, or a random one.
    fn value(&mut self, len: usize) -> u64 {
        let interesting = [
            0,
            1,
            2,
            4,
            8,
            16,
            24,
            64,
            0x7f,
            0xff,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            1 << 32,
            1 << 40,
            i64::MAX as u64,
            1 << 63,
            u64::MAX,
            len as u64,
            len as u64 - 1,
            len as u64 + 1,
            len as u64 - 8,
        ];
        match self.below(3) {
            0 => interesting[self.below(interesting.len())],
            1 => self.next() % (len as u64 * 2),
            _ => self.next(),
        }
    }
}

/// `spec` with one or two of its registry's fields changed (the file is
/// written anew, every length right): what the proof, the targets and the
/// masks make of values a builder never writes.
fn mutate_registry(spec: &Spec, rng: &mut Rng, names: &[String]) -> Vec<u8> {
    let mut spec = spec.clone();
    let base_len = spec.base.len();
    let reg = &mut spec.registry;
    let paths = [
        "linked_refuse::answer",
        "linked_refuse::relocated",
        "linked_refuse::process_id",
        "",
    ];
    for _ in 0..1 + rng.below(2) {
        let name = names[rng.below(names.len())].clone();
        let (p, q) = (rng.below(reg.proof.len()), rng.below(reg.replace.len()));
        match (rng.below(10), reg.proof.get_mut(p), reg.replace.get_mut(q)) {
            (0, Some(proof), _) => proof.offset = rng.value(base_len),
            (1, Some(proof), _) => proof.size = rng.value(base_len),
            (2, Some(proof), _) => proof
                .relocs
                .push((rng.value(base_len), rng.below(48) as u32)),
            (3, Some(proof), _) => proof.symbol = name,
            (4, _, Some(replace)) => replace.symbol = name,
            (5, _, Some(replace)) => replace.host_symbol = name,
            (6, _, Some(replace)) => replace.path = paths[rng.below(paths.len())].into(),
            (7, _, Some(replace)) => {
                let again = replace.clone();
                reg.replace.push(again);
            }
            (8, Some(_), _) => {
                reg.proof.remove(p);
            }
            (_, _, Some(_)) => {
                reg.replace.remove(q);
            }
            _ => {}
        }
    }
    spec.build()
}

/// Set in the process the fuzz test runs in.
const FUZZ_CHILD: &str = "HOTFIX_LINKED_FUZZ_CHILD";
const FUZZ_TEST: &str = "mutations_of_a_valid_patch_never_panic_leak_or_crash";

/// Runs in a process of its own that runs nothing else (no other test's
/// thread maps a stack while it counts mappings), and a crash there is a
/// failure here.
#[test]
fn mutations_of_a_valid_patch_never_panic_leak_or_crash() {
    if std::env::var_os(FUZZ_CHILD).is_some() {
        return fuzz();
    }
    // Held while the process runs: its pipes are no other test's descriptors.
    let _g = serial();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", FUZZ_TEST, "--nocapture", "--test-threads=1"])
        .env(FUZZ_CHILD, "1")
        .output()
        .expect("run the fuzz process");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "the fuzz process failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the fuzz process ran no test:\n{stdout}"
    );
    assert!(stderr.contains("mutations in"), "{stderr}");
}

fn fuzz() {
    let _g = serial();
    let valid = relocating().build();
    check_bytes(&valid).expect("the unmutated patch is accepted");
    let layout = Layout::of(&valid);
    let len = valid.len();
    let mut regions: Vec<std::ops::Range<usize>> = vec![
        0..64,
        layout.shoff..layout.shoff + layout.shnum * 64,
        layout.range(".hotfix.registry"),
        layout.range(".symtab"),
        0..len,
    ];
    for name in layout.names.iter().filter(|n| n.starts_with(".rela")) {
        regions.push(layout.range(name));
    }
    let spec = relocating();
    let mut names: Vec<String> = spec
        .code
        .iter()
        .flat_map(|c| {
            c.relocs
                .iter()
                .map(|r| r.symbol.clone())
                .chain([c.symbol.clone()])
        })
        .chain(spec.registry.proof.iter().map(|p| p.symbol.clone()))
        .collect();
    names.extend([
        String::new(),
        "HOTFIX_REGISTRY_V2".into(),
        "_ZN3no4such17h0000000000000000E".into(),
        symbol_at(answer as fn() -> u64 as usize).name,
    ]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mutate = |rng: &mut Rng| -> Vec<u8> {
        if rng.below(8) == 0 {
            return mutate_registry(&spec, rng, &names);
        }
        let mut b = valid.clone();
        for _ in 0..1 + rng.below(3) {
            let region = regions[rng.below(regions.len())].clone();
            let at = |rng: &mut Rng, width: usize| {
                let span = region.len().saturating_sub(width).max(1);
                let at = region.start + rng.below(span);
                if rng.below(2) == 0 {
                    at & !(width - 1)
                } else {
                    at
                }
            };
            match rng.below(7) {
                0 => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = at(rng, 1).min(b.len() - 1);
                    b[i] = rng.next() as u8;
                }
                2 | 3 => {
                    let i = at(rng, 4);
                    let v = rng.value(len) as u32;
                    if i + 4 <= b.len() {
                        put_u32(&mut b, i, v);
                    }
                }
                4 => {
                    let i = at(rng, 8);
                    let v = rng.value(len);
                    if i + 8 <= b.len() {
                        put_u64(&mut b, i, v);
                    }
                }
                5 => {
                    let keep = rng.below(b.len());
                    b.truncate(keep.max(1));
                }
                _ => {
                    for _ in 0..1 + rng.below(512) {
                        b.push(rng.next() as u8);
                    }
                }
            }
        }
        b
    };
    let check = |bytes: &[u8], i: usize| -> bool {
        match std::panic::catch_unwind(|| check_bytes(bytes).is_ok()) {
            Ok(ok) => ok,
            Err(_) => panic!("check_bytes panicked on mutation {i}"),
        }
    };
    // Warm up: whatever the first checks allocate once (the host's symbol
    // table, the allocator's arenas) is not a leak.
    for i in 0..50 {
        let m = mutate(&mut rng);
        check(&m, i);
    }
    const ITERATIONS: usize = 5000;
    let (maps0, near0, fds0) = (mappings(), near_mappings(), open_fds());
    let start = std::time::Instant::now();
    let (mut accepted, mut refused) = (0usize, 0usize);
    for i in 0..ITERATIONS {
        let m = mutate(&mut rng);
        if check(&m, i) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    let took = start.elapsed();
    let (maps1, near1, fds1) = (mappings(), near_mappings(), open_fds());
    eprintln!(
        "{ITERATIONS} mutations in {took:?}: {accepted} accepted, {refused} refused; mappings {maps0} -> {maps1}, descriptors {fds0} -> {fds1}"
    );
    assert_eq!(accepted + refused, ITERATIONS);
    assert!(
        refused >= ITERATIONS / 4,
        "only {refused} of {ITERATIONS} refused"
    );
    assert!(
        accepted > 0,
        "no mutation was accepted: the loop checks nothing but parsing"
    );
    assert!(maps1 <= maps0, "mappings grew from {maps0} to {maps1}");
    assert!(
        near1 <= near0,
        "mappings near the executable grew from {near0} to {near1}"
    );
    assert!(fds1 <= fds0, "descriptors grew from {fds0} to {fds1}");
    check_bytes(&valid).expect("the unmutated patch is still accepted");
    unchanged();
}

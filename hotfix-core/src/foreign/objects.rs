//! The executable and the libraries loaded in this process, with load bias and
//! GNU build-id read from memory (`dl_iterate_phdr`).

use std::path::PathBuf;

/// One loaded ELF object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedObject {
    /// Its path, for messages (`/proc/self/exe` resolved for the executable).
    pub path: PathBuf,
    /// The path to read its file from (`/proc/self/exe` for the executable, which
    /// works even if the file was deleted since).
    pub read_path: PathBuf,
    /// Load bias: runtime address minus link-time address.
    pub bias: usize,
    /// The GNU build-id note found in its loaded segments.
    pub build_id: Option<Vec<u8>>,
    /// Whether it is the main executable.
    pub is_main: bool,
}

/// Lists the executable and every loaded library (the vDSO, which has no file,
/// is left out).
pub fn loaded_objects() -> Vec<LoadedObject> {
    let mut out: Vec<LoadedObject> = Vec::new();
    // SAFETY: the callback only reads the dl_phdr_info the loader passes, and
    // `data` is the `&mut Vec` passed here, alive for the whole call.
    unsafe { libc::dl_iterate_phdr(Some(collect), (&mut out as *mut Vec<LoadedObject>).cast()) };
    out
}

/// Called by `dl_iterate_phdr` once per loaded object.
extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the Vec passed by `loaded_objects`; `info` is valid for
    // the duration of the callback (dl_iterate_phdr's contract).
    let (out, info) = unsafe { (&mut *data.cast::<Vec<LoadedObject>>(), &*info) };
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    let is_main = out.is_empty() && name.is_empty();
    if !is_main && !name.starts_with('/') {
        return 0; // the vDSO, or a name we cannot open
    }
    let bias = info.dlpi_addr as usize;
    let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: the loader guarantees dlpi_phnum headers at dlpi_phdr.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
    };
    let build_id = phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_NOTE)
        .find_map(|p| {
            // SAFETY: a PT_NOTE segment of a loaded object is mapped readable
            // for p_memsz bytes at bias + p_vaddr.
            let notes = unsafe {
                std::slice::from_raw_parts(
                    bias.wrapping_add(p.p_vaddr as usize) as *const u8,
                    p.p_memsz as usize,
                )
            };
            gnu_build_id(notes)
        });
    let (path, read_path) = if is_main {
        let exe = PathBuf::from("/proc/self/exe");
        (
            std::fs::read_link(&exe).unwrap_or_else(|_| exe.clone()),
            exe,
        )
    } else {
        (PathBuf::from(&name), PathBuf::from(&name))
    };
    out.push(LoadedObject {
        path,
        read_path,
        bias,
        build_id,
        is_main,
    });
    0
}

/// Finds the `NT_GNU_BUILD_ID` note in a run of ELF notes.
pub fn gnu_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    while notes.len() >= 12 {
        let namesz = word(notes, 0)?;
        let descsz = word(notes, 4)?;
        let kind = word(notes, 8)?;
        let name_end = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = name_end.checked_add(align4(descsz)?)?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" {
            return Some(notes[name_end..name_end + descsz].to_vec());
        }
        notes = &notes[desc_end..];
    }
    None
}

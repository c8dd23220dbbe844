//! The C++ component: `Role::getClassName()`, called through a C shim.

use std::ffi::c_char;

unsafe extern "C" {
    /// Defined in `cpp/role_shim.cpp`: writes up to `cap` bytes of the class
    /// name to `buf`, returns its full length, or `usize::MAX` if C++ threw.
    fn demo_role_class_name(buf: *mut c_char, cap: usize) -> usize;
}

/// Why the class name could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleError(&'static str);

impl std::fmt::Display for RoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RoleError {}

/// Longest class name accepted from the C++ side.
const MAX_NAME: usize = 4096;

/// The class name of the server's role, as `Role::getClassName()` returns it.
/// Bytes that are not UTF-8 are replaced.
pub fn class_name() -> Result<String, RoleError> {
    let mut buf = vec![0u8; 64];
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the shim writes
        // at most that many, keeps no pointer, and lets no exception escape.
        let len = unsafe { demo_role_class_name(buf.as_mut_ptr().cast(), buf.len()) };
        if len == usize::MAX {
            return Err(RoleError("the C++ component threw an exception"));
        }
        if len <= buf.len() {
            buf.truncate(len);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if len > MAX_NAME {
            return Err(RoleError("the C++ class name is implausibly long"));
        }
        buf.resize(len, 0);
    }
}

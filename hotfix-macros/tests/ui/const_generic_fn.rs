#[hotfix_core::patchable]
pub fn first<const N: usize>(a: [u8; N]) -> u8 {
    a[0]
}

fn main() {}

#[hotfix_core::patchable]
pub fn evens() -> impl Iterator<Item = u32> {
    (0..10).filter(|x| x % 2 == 0)
}

fn main() {}

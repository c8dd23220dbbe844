#[hotfix_core::shared]
pub static mut COUNT: u32 = 0;

fn main() {}

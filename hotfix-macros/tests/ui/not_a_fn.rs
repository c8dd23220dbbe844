#[hotfix_core::patchable]
pub struct Player;

fn main() {}

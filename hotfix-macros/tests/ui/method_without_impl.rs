pub struct Player;

impl Player {
    #[hotfix_core::patchable]
    pub fn level(&self) -> u32 {
        1
    }
}

fn main() {}

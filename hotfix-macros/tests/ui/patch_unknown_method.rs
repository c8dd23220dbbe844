mod host {
    pub struct Player {
        pub xp: u32,
    }

    #[hotfix_core::patchable]
    impl Player {
        pub fn level(&self) -> u32 {
            self.xp / 100
        }
    }
}

#[hotfix_core::patch(host::Player::levle)]
fn level(this: &host::Player) -> u32 {
    this.xp / 100 + 1
}

fn main() {}

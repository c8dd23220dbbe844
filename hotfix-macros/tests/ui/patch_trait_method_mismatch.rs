mod host {
    pub struct Player {
        pub xp: u32,
    }

    pub trait Describe {
        fn describe(&self) -> String;
    }

    #[hotfix_core::patchable]
    impl Describe for Player {
        fn describe(&self) -> String {
            format!("{} xp", self.xp)
        }
    }
}

#[hotfix_core::patch(<host::Player as host::Describe>::describe)]
fn describe(this: &host::Player) -> u32 {
    this.xp
}

fn main() {}

pub struct Player;

impl Player {
    #[hotfix_core::patch(crate::Player::level)]
    fn level(&self) -> u32 {
        2
    }
}

fn main() {}

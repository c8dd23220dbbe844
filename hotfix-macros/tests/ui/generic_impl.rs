pub struct Wrapper<T>(T);

#[hotfix_core::patchable]
impl<T: Clone> Wrapper<T> {
    pub fn get(&self) -> T {
        self.0.clone()
    }
}

fn main() {}

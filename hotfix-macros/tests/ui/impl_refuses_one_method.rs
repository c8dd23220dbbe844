pub struct Store {
    key: String,
}

#[hotfix_core::patchable]
impl Store {
    pub fn new(key: impl ToString) -> Self {
        Self {
            key: key.to_string(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

fn main() {
    // Only `new` is refused: it and `key` are still there to call.
    let s = Store::new("k");
    assert_eq!(s.key(), "k");
}

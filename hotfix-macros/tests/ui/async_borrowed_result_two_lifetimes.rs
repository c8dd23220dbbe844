pub struct Store {
    name: String,
}

#[hotfix_core::patchable]
impl Store {
    pub async fn name(&self, prefix: &str) -> &str {
        let _ = prefix;
        &self.name
    }

    pub async fn same(&self) -> &str {
        &self.name
    }
}

fn main() {
    let s = Store {
        name: String::new(),
    };
    // The refused method is still there, unpatched.
    let _ = s.name("p");
    let _ = s.same();
}

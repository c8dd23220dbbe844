mod host {
    #[hotfix_core::patchable]
    pub fn version() -> u32 {
        1
    }
}

#[hotfix_core::patch(host::versoin)]
fn version() -> u32 {
    2
}

fn main() {}

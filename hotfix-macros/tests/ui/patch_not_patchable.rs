mod host {
    pub fn version() -> u32 {
        1
    }
}

#[hotfix_core::patch(host::version)]
fn version() -> u32 {
    2
}

fn main() {}

mod host {
    #[hotfix_core::patchable]
    pub fn sum(a: i64, b: i64) -> i64 {
        a - b
    }
}

#[hotfix_core::patch(host::sum)]
fn sum(a: i32, b: i32) -> i32 {
    a + b
}

fn main() {}

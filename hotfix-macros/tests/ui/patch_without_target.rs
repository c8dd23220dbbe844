#[hotfix_core::patch]
fn sum(a: i64, b: i64) -> i64 {
    a + b
}

fn main() {}

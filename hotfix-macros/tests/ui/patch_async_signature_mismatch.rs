mod host {
    #[hotfix_core::patchable]
    pub async fn fetch(key: &str, n: u64) -> u64 {
        key.len() as u64 + n
    }
}

#[hotfix_core::patch(host::fetch)]
async fn fetch(key: &str, n: u32) -> u64 {
    key.len() as u64 + u64::from(n)
}

fn main() {}

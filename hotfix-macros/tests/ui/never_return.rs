#[hotfix_core::patchable]
pub fn stop() -> ! {
    std::process::exit(1)
}

fn main() {}

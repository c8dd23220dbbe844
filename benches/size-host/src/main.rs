//! A host binary for the size benchmark: N generated functions, each called
//! once, and (feature `runtime`) the hotfix runtime applying `argv[1]`.
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/fns.rs"));

fn main() {
    let acc = call_all(std::env::args().count() as u64);
    #[cfg(feature = "runtime")]
    if let Some(p) = std::env::args().nth(1) {
        match hotfix_core::apply(&p) {
            Ok(s) => println!("applied {}", s.name),
            Err(e) => println!("refused: {e}"),
        }
    }
    println!("{acc}");
}

use hotfix_core::{patchable, shared};
use std::sync::atomic::{AtomicU64, Ordering};
use std::fmt;

#[shared]
pub static COUNTER: AtomicU64 = AtomicU64::new(0);

#[patchable]
pub fn sum(a: i64, b: i64) -> i64 { COUNTER.fetch_add(1, Ordering::Relaxed); a - b }

#[patchable]
pub fn first<'a>(s: &'a str, (x, _y): (u8, u8)) -> &'a str { let _ = x; &s[..1] }

#[patchable]
pub unsafe fn raw(p: *const u8) -> u8 { unsafe { *p } }

#[patchable]
pub extern "C" fn cfn(a: i32) -> i32 { a + 1 }

#[patchable]
pub async fn fetch(name: &str, n: &u32) -> String { format!("{name}{n}") }

pub struct Player { pub score: i64 }

#[patchable]
impl Player {
    pub fn new(score: i64) -> Self { Self { score } }
    pub fn get(&self) -> i64 { self.score }
    pub fn add(&mut self, n: i64) { self.score += n }
    pub fn into_score(self) -> i64 { self.score }
}

#[patchable]
impl fmt::Display for Player {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "P{}", self.score) }
}

pub trait Shape { type Out; fn area(&self) -> Self::Out; }
#[patchable]
impl Shape for Player { type Out = i64; fn area(&self) -> Self::Out { self.score * 2 } }

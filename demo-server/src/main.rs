use demo_server::*;
fn main() {
    println!("{} {} {}", sum(1, 2), first("hello", (1, 2)), cfn(1));
    let mut p = Player::new(3); p.add(2);
    println!("{} {} {}", p.get(), p, p.area());
    let f: fn(i64, i64) -> i64 = sum;
    println!("{}", f(5, 1));
    for d in hotfix_core::__private::host_fns() { println!("{} {} {:x}", d.meta.path, d.meta.signature, d.meta.sig_fp); }
    for d in hotfix_core::__private::shared() { println!("shared {} {}", d.path, d.type_name); }
    println!("{}", COUNTER.load(std::sync::atomic::Ordering::Relaxed));
}

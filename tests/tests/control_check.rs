//! `check` over the control socket runs every check of an apply and changes
//! nothing: it names the patch each target would shadow, passes a patch whose
//! hook would veto (hooks run only at apply, and the report says there is one),
//! and refuses what an apply refuses before the hook (foreign symbol missing,
//! already applied).

use fixture_host::{answer, sum};
use hotfix_tests::demo::{RawControl, control_dir, reply_kind};
use hotfix_tests::{build_patch, serial};
use serde_json::{Value, json};
use std::path::Path;

fn ask(c: &mut RawControl, cmd: &str, file: &Path) -> Value {
    c.ask(&json!({"v": 1, "cmd": cmd, "file": file}).to_string())
}

fn names(v: &Value) -> Vec<String> {
    v["status"]["patches"]
        .as_array()
        .expect("a status")
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn check_reports_shadowed_patches_and_refusals_without_changing_anything() {
    let _g = serial();
    let (a, b) = (build_patch("layer_a"), build_patch("layer_b"));
    let (veto, missing) = (build_patch("veto"), build_patch("foreign_missing"));
    let ctl = control_dir("check");
    hotfix_core::control::serve_in(&ctl).expect("serve");
    let mut c = RawControl::connect(&ctl, std::process::id() as libc::pid_t);
    let before = (sum(1, 2), answer());

    let v = ask(&mut c, "check", &a);
    assert_eq!(reply_kind(&v), "ok", "{v}");
    assert_eq!((sum(1, 2), answer()), before, "check applied nothing");
    let targets = v["check"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{v}");
    assert!(targets.iter().all(|t| t["live"].is_null()), "{v}");

    let v = ask(&mut c, "apply", &a);
    assert_eq!(reply_kind(&v), "ok", "{v}");
    let id_a = v["applied"]["id"].as_u64().unwrap();
    let after_a = (sum(1, 2), answer());
    assert_eq!(after_a, (103, 1));

    // b would shadow a on both functions.
    let v = ask(&mut c, "check", &b);
    assert_eq!(reply_kind(&v), "ok", "{v}");
    assert_eq!(v["check"]["name"], "layer_b");
    for t in v["check"]["targets"].as_array().unwrap() {
        assert_eq!(t["live"]["patch"], "layer_a", "{v}");
        assert_eq!(t["live"]["id"].as_u64(), Some(id_a), "{v}");
    }
    assert_eq!((sum(1, 2), answer()), after_a, "check applied nothing");
    assert_eq!(names(&c.ask(r#"{"v":1,"cmd":"status"}"#)), ["layer_a"]);

    // Already applied: refused by check, as apply would.
    let v = ask(&mut c, "check", &a);
    assert_eq!(reply_kind(&v), "refused", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already applied")
    );

    // A missing foreign function is found missing by check.
    let v = ask(&mut c, "check", &missing);
    assert_eq!(reply_kind(&v), "refused", "{v}");
    let why = v["error"]["message"].as_str().unwrap();
    assert!(why.contains("no_such_function_anywhere"), "{why}");

    // A vetoing hook does not run at check; the report says it will at apply.
    let v = ask(&mut c, "check", &veto);
    assert_eq!(reply_kind(&v), "ok", "{v}");
    assert_eq!(v["check"]["apply_hook"], true, "{v}");
    let v = ask(&mut c, "apply", &veto);
    assert_eq!(reply_kind(&v), "refused", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("vetoed"));
    assert_eq!((sum(1, 2), answer()), after_a);
    assert_eq!(names(&v), ["layer_a"], "a refusal carries the status too");

    let v = c.ask(&json!({"v": 1, "cmd": "revert", "id": id_a}).to_string());
    assert_eq!(reply_kind(&v), "ok", "{v}");
    assert_eq!(v["reverted"][0]["id"].as_u64(), Some(id_a));
    assert_eq!((sum(1, 2), answer()), before);
    assert!(names(&v).is_empty());
}

//! A host that trusts a key applies only patches that key signed; the checks
//! run before anything of the patch is parsed or loaded. (A binary of its own:
//! trusting a key changes the whole process's runtime.)

use fixture_host::sum;
use hotfix_core::signing::{SecretKey, signature_path};
use hotfix_core::{Error, Runtime};
use hotfix_tests::{build_patch, scratch_dir, serial};
use std::path::Path;

fn copy_patch(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy the patch");
}

fn refused_saying(path: &Path, says: &str) {
    let err = Runtime::global().apply(path).expect_err("refused");
    assert!(
        matches!(&err, Error::SignatureRefused { reason, .. } if reason.contains(says)),
        "{err}"
    );
    assert_eq!(sum(1, 2), -1);
    assert!(Runtime::global().status().patches.is_empty());
}

#[test]
fn only_patches_signed_by_a_trusted_key_apply() {
    let _g = serial();
    let trusted = SecretKey::generate().expect("key");
    let other = SecretKey::generate().expect("key");
    Runtime::global().trust_key(trusted.public());
    let good = build_patch("good");
    let dir = scratch_dir("signed");

    let unsigned = dir.join("libunsigned.so");
    copy_patch(&good, &unsigned);
    refused_saying(&unsigned, "it is not signed");

    let signed = dir.join("libsigned.so");
    copy_patch(&good, &signed);
    trusted.sign_file(&signed).expect("sign");
    let applied = Runtime::global()
        .apply(&signed)
        .expect("a signed patch applies");
    assert_eq!(sum(1, 2), 3);
    assert_eq!(applied.digest.to_string().len(), 64);
    Runtime::global().revert_newest().expect("revert");

    // One byte changed after signing (the signature file kept).
    let flipped = dir.join("libflipped.so");
    let mut bytes = std::fs::read(&signed).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&flipped, &bytes).unwrap();
    std::fs::copy(signature_path(&signed), signature_path(&flipped)).unwrap();
    refused_saying(&flipped, "does not verify");

    // Signed by a key this host does not trust.
    let foreign = dir.join("libforeign.so");
    copy_patch(&good, &foreign);
    other.sign_file(&foreign).expect("sign");
    refused_saying(&foreign, "does not verify");

    // A garbage signature file.
    let garbage = dir.join("libgarbage.so");
    copy_patch(&good, &garbage);
    std::fs::write(signature_path(&garbage), "hotfix-ed25519-signature zz\n").unwrap();
    refused_saying(&garbage, "hex digits");
}

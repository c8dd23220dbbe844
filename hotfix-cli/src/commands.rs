//! The subcommands.

use crate::error::CliError;
use crate::remote::{CHANGE_TIMEOUT, STATUS_TIMEOUT, ask, status_of};
use crate::show;
use hotfix_core::control::dir;
use hotfix_core::control::protocol::Command;
use std::path::Path;

/// The absolute path of a patch file, as the process must be told it.
fn absolute(file: &Path) -> Result<String, CliError> {
    let abs = std::fs::canonicalize(file)
        .map_err(|e| CliError::Usage(format!("patch file {}: {e}", file.display())))?;
    abs.into_os_string()
        .into_string()
        .map_err(|p| CliError::Usage(format!("patch file {p:?}: the path is not UTF-8")))
}

/// `hotfix ps`.
pub fn ps() -> Result<(), CliError> {
    let dir = dir::control_dir();
    let pids = dir::live_pids(&dir).map_err(CliError::Directory)?;
    println!("{:<8} {:<40} PATCHES", "PID", "EXECUTABLE");
    for pid in pids {
        match ask(pid, Command::Status, STATUS_TIMEOUT).and_then(|r| {
            let s = status_of(pid, &r)?;
            let patches: Vec<String> = s.patches.iter().map(show::patch_label).collect();
            Ok((s.exe.clone(), patches))
        }) {
            Ok((exe, patches)) => {
                let patches = if patches.is_empty() {
                    "none".to_owned()
                } else {
                    patches.join(", ")
                };
                println!("{pid:<8} {exe:<40} {patches}");
            }
            Err(e) => println!("{pid:<8} {:<40} (no answer: {e})", "?"),
        }
    }
    Ok(())
}

/// `hotfix status PID [--json]`.
pub fn status(pid: u32, json: bool) -> Result<(), CliError> {
    let reply = ask(pid, Command::Status, STATUS_TIMEOUT)?;
    let s = status_of(pid, &reply)?;
    if json {
        let text = serde_json::to_string_pretty(s)
            .map_err(|e| CliError::Usage(format!("cannot encode the status: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", show::status(s));
    }
    Ok(())
}

/// `hotfix check PID FILE`.
pub fn check(pid: u32, file: &Path) -> Result<(), CliError> {
    let file = absolute(file)?;
    let reply = ask(pid, Command::Check { file }, CHANGE_TIMEOUT)?;
    let report = reply.check.as_ref().ok_or_else(|| CliError::Remote {
        pid,
        kind: hotfix_core::control::protocol::ErrorKind::Internal,
        message: "the reply carries no check report".to_owned(),
    })?;
    print!("{}", show::check(pid, report));
    Ok(())
}

/// `hotfix apply PID FILE` and `hotfix apply --pid A --pid B FILE`.
pub fn apply(pids: Vec<u32>, args: Vec<String>) -> Result<(), CliError> {
    let (pids, file) = match (pids.is_empty(), args.as_slice()) {
        (true, [pid, file]) => {
            let pid = pid
                .parse::<u32>()
                .map_err(|_| CliError::Usage(format!("{pid:?} is not a pid")))?;
            (vec![pid], file)
        }
        (false, [file]) => (pids, file),
        (true, _) => return Err(CliError::Usage("apply takes PID FILE".into())),
        (false, _) => {
            return Err(CliError::Usage(
                "with --pid, apply takes only the FILE".into(),
            ));
        }
    };
    let file = absolute(Path::new(file))?;
    let mut done: Vec<(u32, u64)> = Vec::new();
    for (i, &pid) in pids.iter().enumerate() {
        let command = Command::Apply { file: file.clone() };
        match ask(pid, command, CHANGE_TIMEOUT) {
            Ok(reply) => match &reply.applied {
                Some(p) => {
                    println!("{pid}: {}", show::applied(p));
                    done.push((pid, p.id));
                }
                None => println!("{pid}: applied (the reply does not say what)"),
            },
            Err(e) => {
                // Alone, the error (on stderr) says it all.
                if pids.len() > 1 {
                    println!("{pid}: refused: {}", e.reason());
                }
                for skipped in &pids[i + 1..] {
                    println!("{skipped}: not attempted");
                }
                return Err(undo(done, e));
            }
        }
    }
    Ok(())
}

/// Reverts what a refused multi-process apply had applied, newest first.
fn undo(done: Vec<(u32, u64)>, cause: CliError) -> CliError {
    let mut failed = Vec::new();
    for (pid, id) in done.into_iter().rev() {
        let command = Command::Revert {
            id: Some(id),
            all: false,
        };
        match ask(pid, command, CHANGE_TIMEOUT) {
            Ok(_) => println!("{pid}: reverted #{id} again (another process refused)"),
            Err(e) => {
                println!(
                    "{pid}: STILL PATCHED: reverting #{id} failed: {}",
                    e.reason()
                );
                failed.push(pid);
            }
        }
    }
    if failed.is_empty() {
        cause
    } else {
        CliError::Partial(format!(
            "{cause}; and processes {failed:?} could not be reverted: they stay patched"
        ))
    }
}

/// `hotfix revert PID [ID | --all]`.
pub fn revert(pid: u32, id: Option<&str>, all: bool) -> Result<(), CliError> {
    let id = match id {
        None => None,
        Some(text) => Some(
            text.trim_start_matches('#')
                .parse::<u64>()
                .map_err(|_| CliError::Usage(format!("{text:?} is not a patch id")))?,
        ),
    };
    let reply = ask(pid, Command::Revert { id, all }, CHANGE_TIMEOUT)?;
    for p in reply.reverted.iter().flatten() {
        println!("{pid}: reverted {}", show::patch_label(p));
    }
    if let Ok(s) = status_of(pid, &reply) {
        let left: Vec<String> = s.patches.iter().map(show::patch_label).collect();
        if left.is_empty() {
            println!("{pid}: no patch applied now");
        } else {
            println!("{pid}: still applied: {}", left.join(", "));
        }
    }
    Ok(())
}

/// `hotfix inspect FILE`.
pub fn inspect(file: &Path) -> Result<(), CliError> {
    let info = hotfix_core::inspect(file).map_err(|e| match e {
        hotfix_core::Error::NotFound { .. } => CliError::Usage(e.to_string()),
        e => CliError::Refused(e),
    })?;
    print!("{}", show::inspect(&info));
    Ok(())
}

/// Makes a key pair `NAME.secret` / `NAME.pub`.
pub fn keygen(name: &Path) -> Result<(), CliError> {
    use hotfix_core::signing::{SecretKey, write_public};
    let with = |ext: &str| {
        let mut p = name.as_os_str().to_owned();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (secret, public) = (with(".secret"), with(".pub"));
    let key = SecretKey::generate().map_err(CliError::Refused)?;
    key.write(&secret).map_err(CliError::Refused)?;
    write_public(&key.public(), &public).map_err(CliError::Refused)?;
    println!(
        "key {}: secret {} (keep it), public {} (trust it in servers)",
        key.public().id(),
        secret.display(),
        public.display()
    );
    Ok(())
}

/// Signs `file` with the secret key in `key`.
pub fn sign(key: &Path, file: &Path) -> Result<(), CliError> {
    let secret = hotfix_core::signing::SecretKey::read(key).map_err(CliError::Refused)?;
    let sig = secret.sign_file(file).map_err(CliError::Refused)?;
    println!(
        "signed {} with key {}: {}",
        file.display(),
        secret.public().id(),
        sig.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_arguments_are_checked_before_any_process_is_asked() {
        let usage = |pids: Vec<u32>, args: &[&str]| {
            let args = args.iter().map(|a| a.to_string()).collect();
            matches!(apply(pids, args), Err(CliError::Usage(_)))
        };
        assert!(usage(vec![], &["/x.so"]), "PID missing");
        assert!(usage(vec![], &["abc", "/x.so"]), "PID not a number");
        assert!(
            usage(vec![1], &["2", "/x.so"]),
            "--pid and a positional PID"
        );
        assert!(usage(vec![1], &["/no/such/patch.so"]), "missing file");
    }
}

//! Command-line options.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The address served when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// File name of the patch looked for beside the server's executable.
pub const DEFAULT_PATCH: &str = "libdemo_patch.so";

/// Usage text.
pub const USAGE: &str = "usage: demo-server [--listen ADDR] [--patch PATH] [--trusted-key FILE]...\n\
    \n  --listen ADDR       address to serve (default 127.0.0.1:7878; port 0 picks a free port)\
    \n  --patch PATH        patch applied on SIGHUP (default: libdemo_patch.so beside the executable)\
    \n  --trusted-key FILE  apply only patches signed by this public key (may be repeated)\
    \n\nSIGHUP applies the patch, SIGUSR2 reverts the newest applied patch.";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The patch file applied on `SIGHUP`.
    pub patch: PathBuf,
    /// Public key files: when any is given, only patches they signed apply.
    pub trusted_keys: Vec<PathBuf>,
}

/// Why the command line was not understood (`Help` when `--help` was asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// `--help` or `-h`.
    Help,
    /// A bad option or value.
    Invalid(String),
}

impl Config {
    /// Parses the arguments (without the program name).
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Config, CliError> {
        let mut listen = None;
        let mut patch = None;
        let mut trusted_keys = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg
                .into_string()
                .map_err(|a| CliError::Invalid(format!("argument {a:?} is not valid UTF-8")))?;
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(OsString::from(v))),
                _ => (arg, None),
            };
            let mut value = |what: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| CliError::Invalid(format!("{name} needs {what}")))
            };
            match name.as_str() {
                "--listen" => {
                    let v = value("an address")?;
                    let text = v.to_string_lossy();
                    let addr = text.parse::<SocketAddr>().map_err(|e| {
                        CliError::Invalid(format!("--listen {text}: not an IP:PORT address ({e})"))
                    })?;
                    listen = Some(addr);
                }
                "--patch" => patch = Some(PathBuf::from(value("a path")?)),
                "--trusted-key" => trusted_keys.push(PathBuf::from(value("a public key file")?)),
                "-h" | "--help" => return Err(CliError::Help),
                other => return Err(CliError::Invalid(format!("unknown argument {other}"))),
            }
        }
        let listen = match listen {
            Some(a) => a,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| CliError::Invalid("bad default address".to_owned()))?,
        };
        let patch = match patch {
            Some(p) => p,
            None => default_patch()?,
        };
        Ok(Config {
            listen,
            patch,
            trusted_keys,
        })
    }
}

/// `libdemo_patch.so` beside the running executable.
fn default_patch() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Invalid(format!("cannot find the executable's path: {e}")))?;
    let dir = exe.parent().ok_or_else(|| {
        CliError::Invalid(format!("the executable {} has no directory", exe.display()))
    })?;
    Ok(dir.join(DEFAULT_PATCH))
}

#[cfg(test)]
mod tests {
    use super::{CliError, Config};
    use std::ffi::OsString;

    fn parse(args: &[&str]) -> Result<Config, CliError> {
        Config::from_args(args.iter().map(OsString::from))
    }

    #[test]
    fn options() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert!(c.patch.ends_with("libdemo_patch.so"));
        let c = parse(&["--listen", "127.0.0.1:0", "--patch=/tmp/p.so"]).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.patch.to_str(), Some("/tmp/p.so"));
        assert!(c.trusted_keys.is_empty());
        let c = parse(&["--trusted-key", "a.pub", "--trusted-key=b.pub"]).unwrap();
        assert_eq!(c.trusted_keys.len(), 2);
        assert!(parse(&["--trusted-key"]).is_err());
        assert_eq!(parse(&["--help"]), Err(CliError::Help));
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nowhere"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}

//! demo-server: a small TCP game server whose buggy functions are fixed live by
//! hotfix.
//!
//! - [`handlers`]: the `#[patchable]` game logic (`sum`, `add_score`, `div`).
//! - [`state`]: the `#[shared]` score table.
//! - [`role`]: the C++ component, reached through FFI.
//! - [`protocol`]: parsing a request line.
//! - [`dispatch`]: answering one request line (panics become `ERR` replies).
//! - [`lines`]: reading bounded lines from a connection.
//! - [`server`]: the listener and one thread per connection.
//! - [`signals`]: `SIGHUP` applies the patch, `SIGUSR2` reverts the newest one.
//! - [`cli`]: command-line options.

#![warn(missing_docs)]

pub mod cli;
pub mod dispatch;
pub mod handlers;
pub mod lines;
pub mod protocol;
pub mod role;
pub mod server;
pub mod signals;
pub mod state;

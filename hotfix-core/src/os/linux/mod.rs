//! Linux: /proc/self/maps, stopping threads with a signal, membarrier, mprotect.

pub mod code_write;
pub mod maps;
mod maps_snapshot;
pub mod membarrier;
pub mod near_map;
pub mod peek;
pub mod protect;
mod stop_handler;
mod tasks;
pub mod threads;

//! What the examples' `main`s share: errors in one line with a hint, and exit codes.

// Not every example uses every helper.
#![allow(dead_code)]

use std::fmt::Display;
use std::io;
use std::process::ExitCode;

/// Prints `error: {message}` to stderr and gives the failure exit code.
pub fn fail(message: impl Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Why `addr` could not be listened on, with what to try instead.
pub fn bind_failed(addr: &str, error: &io::Error, example: &str) -> String {
    let hint = format!("pass another address: cargo run --example {example} -- 127.0.0.1:0 (any free port)");
    match error.kind() {
        io::ErrorKind::AddrInUse => format!("cannot listen on {addr}: the address is in use; {hint}"),
        io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: not an address of this machine; {hint}")
        }
        io::ErrorKind::PermissionDenied => {
            format!("cannot listen on {addr}: permission denied (ports below 1024 need privileges); {hint}")
        }
        _ => format!("cannot listen on {addr}: {error}; the address is HOST:PORT, e.g. 127.0.0.1:9001"),
    }
}

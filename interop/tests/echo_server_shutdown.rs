//! The main job under load: `examples/echo_server.rs` as a child process, a thousand Python
//! `websockets` clients echoing messages through it, then SIGTERM (and, in a second phase,
//! SIGINT). Every client must get the close code 1001 (going away), every echo it received must
//! be byte-exact and in order, the only messages without an echo must be the few in flight when
//! the close arrived, and the server must exit with status 0 within a bound.
//!
//! Needs `python3` with the `websockets` package (`.ci/run` installs it). Unix only: the
//! signals are sent with `kill`.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use wsproto_interop::child::{
    build_example, python_script, require_python_websockets, start_echo_server, wait_for,
};

const CLIENTS: usize = 1000;
/// From the signal to the server's exit: its own deadline for the closing handshakes plus slack.
const EXIT_BOUND: Duration = Duration::from_secs(10);
/// Until every client is connected and echoing.
const READY_BOUND: Duration = Duration::from_secs(100);
/// Until the clients have reported, after the signal.
const RESULT_BOUND: Duration = Duration::from_secs(70);

/// The value of `key=` in a `RESULT` line.
fn field<'a>(result: &'a str, key: &str) -> &'a str {
    let pattern = format!(" {key}=");
    let start = result.find(&pattern).unwrap_or_else(|| panic!("{key} missing in {result}")) + pattern.len();
    result[start..].split(' ').next().unwrap()
}

fn number(result: &str, key: &str) -> usize {
    field(result, key).parse().unwrap()
}

/// One phase: start the server, connect the clients, signal, check.
fn phase(server: &Path, signal: &str) {
    let (mut server_child, server_log, url) = start_echo_server(server);

    let (_clients, client_out) = python_script("echo_clients.py", &[url.clone(), CLIENTS.to_string()]);
    let mut client_seen = Vec::new();
    let ready = wait_for(&client_out, "READY", Instant::now() + READY_BOUND, &mut client_seen);
    println!("{signal}: {ready}");
    assert!(ready.starts_with(&format!("READY clients={CLIENTS} ")), "not every client got going: {ready}");
    // Mid-traffic: the clients keep sending while the signal arrives.
    thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    let pid = server_child.0.id().to_string();
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    let status = loop {
        if let Some(status) = server_child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < EXIT_BOUND,
            "the server did not exit within {EXIT_BOUND:?} of {signal}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let exit_time = signalled.elapsed();
    println!("{signal}: server exited with {status} after {exit_time:.2?}");
    // What the server said about the shutdown (the per-connection lines are only counted).
    let mut closed = 0;
    for line in server_log.try_iter() {
        if line.ends_with(": closed") {
            closed += 1;
        } else {
            println!("{signal}: server: {line}");
        }
    }
    println!("{signal}: server logged {closed} connections closed");
    assert_eq!(status.code(), Some(0), "the server's exit status after {signal}");

    let result = wait_for(&client_out, "RESULT", Instant::now() + RESULT_BOUND, &mut client_seen);
    println!("{signal}: {result}");
    assert_eq!(number(&result, "ready"), CLIENTS, "{result}");
    assert_eq!(number(&result, "code1001"), CLIENTS, "every client gets 1001: {result}");
    assert_eq!(field(&result, "other_codes"), "none", "{result}");
    assert_eq!(number(&result, "mismatches"), 0, "echoes are byte-exact and in order: {result}");
    assert_eq!(number(&result, "unexpected"), 0, "{result}");
    assert_eq!(number(&result, "errors"), 0, "{result}");
    assert_eq!(number(&result, "stuck"), 0, "{result}");
    // Only messages in flight when the close frame arrived may lack their echo.
    let (sent, echoed, unechoed) =
        (number(&result, "sent"), number(&result, "echoed"), number(&result, "unechoed"));
    assert_eq!(sent, echoed + unechoed, "every message is echoed or was in flight at the close: {result}");
    assert!(number(&result, "max_unechoed") <= 4, "{result}");
    assert!(echoed >= 3 * CLIENTS, "{result}");
    assert_eq!(closed, CLIENTS, "the server logged one line per connection");
}

#[test]
fn echo_server_closes_a_thousand_python_clients_with_1001_on_sigterm_and_sigint() {
    require_python_websockets();
    let server = build_example("wsproto", "echo_server", "");
    let started = Instant::now();
    phase(&server, "TERM");
    phase(&server, "INT");
    println!("both phases in {:.2?}", started.elapsed());
}

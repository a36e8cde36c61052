//! `examples/chat_cluster.rs` as two processes, A and B, relaying through a `redis-server` of
//! their own on a free loopback port, with two wsproto clients on each process.
//!
//! Four rounds, each checked exactly (every client has, from every other client, the posts it
//! should have and nothing else, in the order they were sent):
//!
//! 1. Redis up: every client posts; every other client of both processes gets each post once,
//!    in order per sender, and no client gets its own.
//! 2. Redis killed (both processes say they lost it): every client posts; the clients of the
//!    same process get the posts, the other process's clients none.
//! 3. Redis restarted on the same port (both processes say they relay again): as round 1.
//! 4. A fence: one client of each process posts once more, after having received all of
//!    round 3. A post that came back from Redis to its own process a second time, or one held
//!    back during the outage and relayed late, would be ahead of the fence in the Redis channel,
//!    so the exact check after the fence catches it.
//!
//! Then SIGTERM to both processes: every client gets 1001 (going away) and both exit with
//! status 0.
//!
//! Skipped, with a message, when `redis-server` is not installed (`.ci/run` installs it).
//! Unix only: the processes are stopped with `kill`.
#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;
use tokio::time::timeout;
use wsproto::session::Session;
use wsproto::upgrade::MaybeTlsStream;
use wsproto::{CloseCode, Event};
use wsproto_interop::child::{build_example, lines, Guard};

/// Until a process says something expected (listening, relaying, lost Redis).
const LOG_BOUND: Duration = Duration::from_secs(20);
/// Until every client has the posts of a round.
const ROUND_BOUND: Duration = Duration::from_secs(20);
/// From SIGTERM to the exit: the processes' own 5 s for the closing handshakes, plus slack.
const EXIT_BOUND: Duration = Duration::from_secs(10);

/// The lines a child writes to one of its pipes, read on a thread.
struct Log {
    name: String,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Log {
    fn new(name: &str, pipe: impl std::io::Read + Send + 'static) -> Self {
        Log { name: name.to_string(), lines: lines(pipe), seen: Vec::new() }
    }

    /// The next line containing `needle`, within [`LOG_BOUND`].
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LOG_BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "{}: no line containing {needle:?} ({e}); its output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Redis {
    child: Guard,
    _log: Log,
}

/// A redis-server on 127.0.0.1:`port` that keeps nothing on disk, once it accepts connections.
fn start_redis(port: u16) -> Redis {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start redis-server");
    let mut log = Log::new("redis-server", child.stdout.take().unwrap());
    let child = Guard(child);
    log.wait_for("eady to accept connections");
    Redis { child, _log: log }
}

struct Chat {
    child: Guard,
    log: Log,
    url: String,
}

fn start_chat(exe: &Path, name: &str, redis_port: u16) -> Chat {
    let mut child = Command::new(exe)
        .args(["127.0.0.1:0", "--redis", &format!("redis://127.0.0.1:{redis_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat_cluster");
    let mut log = Log::new(name, child.stderr.take().unwrap());
    let child = Guard(child);
    let listening = log.wait_for(" listening on ws://");
    let url = listening.split_whitespace().find(|w| w.starts_with("ws://")).unwrap().to_string() + "/";
    Chat { child, log, url }
}

/// One chat client: what it sent, and what it received from each other client.
struct Client {
    index: usize,
    name: String,
    ws: Session<MaybeTlsStream>,
    sent: usize,
    /// The sequence numbers received from client `k`, in arrival order.
    from: Vec<Vec<usize>>,
    /// How client `k`'s posts are labelled (`<process>/<address>`), the same everywhere.
    labels: Vec<Option<String>>,
}

impl Client {
    /// Connects and waits for the welcome: from then on the process delivers it every post.
    async fn connect(url: &str, index: usize, name: String, clients: usize) -> Client {
        let (mut ws, _) = timeout(ROUND_BOUND, wsproto::upgrade::connect(url))
            .await
            .unwrap_or_else(|_| panic!("{name}: no connection to {url}"))
            .unwrap_or_else(|e| panic!("{name}: connect {url}: {e}"));
        loop {
            match timeout(ROUND_BOUND, ws.next()).await {
                Ok(Some(Ok(Event::TextMessage(m)))) if m.data.starts_with("* welcome ") => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("{name}: no welcome: {other:?}"),
            }
        }
        Client { index, name, ws, sent: 0, from: vec![Vec::new(); clients], labels: vec![None; clients] }
    }

    async fn post(&mut self, count: usize) {
        for _ in 0..count {
            let text = format!("c{}-{}", self.index, self.sent);
            self.ws.send(text.into()).await.unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
            self.sent += 1;
        }
    }

    /// Receives until it has at least `want[k]` posts from each client `k`.
    async fn receive_until(&mut self, want: &[usize]) {
        let deadline = tokio::time::Instant::now() + ROUND_BOUND;
        while self.from.iter().zip(want).any(|(got, want)| got.len() < *want) {
            let event = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(event))) => event,
                Ok(other) => panic!("{}: connection ended: {other:?}", self.name),
                Err(_) => {
                    let got: Vec<usize> = self.from.iter().map(Vec::len).collect();
                    panic!(
                        "{}: after {ROUND_BOUND:?}, posts from each client: {got:?}, expected {want:?}",
                        self.name
                    )
                }
            };
            let Event::TextMessage(m) = event else { continue };
            if m.data.starts_with("* ") {
                continue; // joins and departures
            }
            let (label, text) =
                m.data.rsplit_once(": ").unwrap_or_else(|| panic!("{}: unexpected {:?}", self.name, m.data));
            let (sender, seq) = text
                .strip_prefix('c')
                .and_then(|t| t.split_once('-'))
                .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
                .unwrap_or_else(|| panic!("{}: unexpected {:?}", self.name, m.data));
            let known = self.labels[sender].get_or_insert_with(|| label.to_string());
            assert_eq!(known, label, "{}: client {sender} labelled two ways", self.name);
            self.from[sender].push(seq);
        }
    }

    /// Until the close: its code.
    async fn closed_by_server(&mut self) -> Option<CloseCode> {
        let mut code = None;
        loop {
            match timeout(EXIT_BOUND, self.ws.next()).await {
                Ok(Some(Ok(Event::CloseConnection(close)))) => code = Some(close.code),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("{}: during shutdown: {e}", self.name),
                Ok(None) => return code,
                Err(_) => panic!("{}: not closed within {EXIT_BOUND:?}", self.name),
            }
        }
    }
}

/// The clients, which process each is on, and what each should have received.
struct Cluster {
    clients: Vec<Client>,
    process: Vec<usize>,
    /// `expected[c][k]`: the sequence numbers client `c` should have from client `k`.
    expected: Vec<Vec<Vec<usize>>>,
}

impl Cluster {
    /// `count` posts from each of `senders`, reaching the other clients for which
    /// `reaches(sender's process, receiver's process)`; then the exact check.
    async fn round(
        &mut self,
        what: &str,
        senders: &[usize],
        count: usize,
        reaches: impl Fn(usize, usize) -> bool,
    ) {
        let started = Instant::now();
        for &k in senders {
            let first = self.clients[k].sent;
            for c in 0..self.clients.len() {
                if c != k && reaches(self.process[k], self.process[c]) {
                    self.expected[c][k].extend(first..first + count);
                }
            }
        }
        let expected = &self.expected;
        join_all(self.clients.iter_mut().enumerate().map(|(c, client)| async move {
            if senders.contains(&c) {
                client.post(count).await;
            }
            let want: Vec<usize> = expected[c].iter().map(Vec::len).collect();
            client.receive_until(&want).await;
        }))
        .await;
        for (client, expected) in self.clients.iter().zip(&self.expected) {
            for (k, (got, want)) in client.from.iter().zip(expected).enumerate() {
                assert_eq!(got, want, "{what}: {} from client {k}: each post once, in order", client.name);
            }
        }
        let labels: Vec<_> = self.clients.iter().map(|c| &c.labels).collect();
        for k in 0..self.clients.len() {
            let mut names = labels.iter().filter_map(|l| l[k].as_ref());
            if let Some(first) = names.next() {
                assert!(names.all(|n| n == first), "{what}: client {k} has two labels");
            }
        }
        println!("{what}: {} posts checked in {:.2?}", senders.len() * count, started.elapsed());
    }
}

fn kill(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
}

#[test]
fn chat_cluster_relays_through_redis_and_survives_its_restart() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        println!(
            "SKIPPED: redis-server is not installed (apt-get install redis-server); chat_cluster not tested"
        );
        return;
    }
    let exe = build_example("wsproto-interop", "chat_cluster", "");
    let started = Instant::now();
    let port = free_port();
    let mut redis = start_redis(port);
    let mut chats = [start_chat(&exe, "process A", port), start_chat(&exe, "process B", port)];
    for chat in &mut chats {
        chat.log.wait_for("redis: relaying through");
    }
    println!("redis-server on port {port}, processes on {} and {}", chats[0].url, chats[1].url);

    let rt: Runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Clients 0 and 1 on process A, 2 and 3 on process B.
    let process = vec![0, 0, 1, 1];
    let names = ["A1", "A2", "B1", "B2"];
    let clients = rt.block_on(join_all(
        process.iter().enumerate().map(|(c, &p)| Client::connect(&chats[p].url, c, names[c].to_string(), 4)),
    ));
    let mut cluster = Cluster { clients, process, expected: vec![vec![Vec::new(); 4]; 4] };
    let everywhere = |_: usize, _: usize| true;
    let same_process = |a: usize, b: usize| a == b;

    rt.block_on(cluster.round("1: Redis up", &[0, 1, 2, 3], 20, everywhere));

    redis.child.0.kill().unwrap();
    redis.child.0.wait().unwrap();
    for chat in &mut chats {
        let lost = chat.log.wait_for("redis: connection lost");
        println!("{}: {lost}", chat.log.name);
    }
    rt.block_on(cluster.round("2: Redis down, local delivery", &[0, 1, 2, 3], 10, same_process));

    let _redis = start_redis(port);
    for chat in &mut chats {
        let relaying = chat.log.wait_for("redis: relaying through");
        println!("{}: {relaying}", chat.log.name);
    }
    rt.block_on(cluster.round("3: Redis back, relaying resumed", &[0, 1, 2, 3], 20, everywhere));
    rt.block_on(cluster.round("4: fence", &[0, 2], 1, everywhere));

    let signalled = Instant::now();
    for chat in &chats {
        kill(&chat.child.0, "TERM");
    }
    let codes = rt.block_on(join_all(cluster.clients.iter_mut().map(Client::closed_by_server)));
    for (client, code) in cluster.clients.iter().zip(codes) {
        assert_eq!(code, Some(CloseCode::GOING_AWAY), "{}: the close on SIGTERM", client.name);
    }
    for chat in &mut chats {
        let status = loop {
            if let Some(status) = chat.child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                signalled.elapsed() < EXIT_BOUND,
                "{}: no exit within {EXIT_BOUND:?} of SIGTERM",
                chat.log.name
            );
            thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{}: exit status after SIGTERM", chat.log.name);
    }
    println!("all checks in {:.2?}", started.elapsed());
}

//! The chat server of `examples/chat.rs`, scaled out: several processes (on one machine or
//! behind a load balancer) relay their posts to each other through Redis pub/sub.
//!
//! ```text
//! redis-server --port 6379 --save ''                                    # or any Redis
//! cargo run -p wsproto-interop --example chat_cluster                   # ws://127.0.0.1:9002
//! cargo run -p wsproto-interop --example chat_cluster -- 127.0.0.1:9003 --redis redis://127.0.0.1:6379
//! cargo run --example client -- ws://127.0.0.1:9002/                    # clients on either
//! cargo run --example client -- ws://127.0.0.1:9003/
//! ```
//!
//! Every text message a client sends reaches every other client of every process once, as
//! `<process>/<client address>: <text>`; each process frames (and compresses) it once for all
//! its clients as a [`PreparedMessage`]. A new client is greeted with `* welcome
//! <process>/<address>` once it is receiving posts; joins and departures are posts too.
//!
//! # How posts travel
//!
//! A post goes into the process's `tokio::sync::broadcast` channel, as in `chat.rs`, which
//! delivers it to the local clients at once. One relay task per process is a subscriber of
//! that channel: it publishes each local post to the Redis channel `wsproto-chat` as
//! `<process id>\n<sender>\n<line>`, and puts every message it receives from the Redis
//! subscription whose process id is not its own into the broadcast channel (as a remote post,
//! which it does not publish again). Its own posts coming back from Redis are ignored.
//!
//! Delivering locally first, rather than publishing everything and delivering only what comes
//! back from Redis, is what keeps a process useful when Redis is away: its own clients go on
//! talking to each other without a mode switch (a switch from "deliver what Redis returns" to
//! "deliver locally" and back would lose or double the posts in flight at the switch), and
//! local delivery does not wait for a round trip through Redis. What it costs: there is no
//! single order across processes. Two posts from different processes may reach the clients
//! of each process in different orders. The posts of one sender keep their order everywhere
//! (one broadcast channel in the process, one publishing connection, one Redis channel), and
//! each reaches every client once.
//!
//! # When Redis goes away
//!
//! The relay says so on stderr (`redis: connection lost ...`), local delivery goes on, and it
//! reconnects with exponential backoff (0.1 s doubling up to 5 s), checking a live connection
//! with a PING every 5 s so that a Redis that vanished without closing its connections is
//! noticed too. Redis pub/sub keeps nothing for absent subscribers, so the posts made while a
//! process was cut off reach its own clients only; once it has reconnected (`redis: relaying
//! ...`) relaying resumes with the next post.
//!
//! # Shutdown
//!
//! Ctrl-C (SIGINT) or SIGTERM stops accepting and closes every connection with 1001 (going
//! away), waiting up to 5 s, then exits with status 0: a rolling deploy restarts the
//! processes one by one and their clients reconnect through the load balancer. Errors are
//! printed as `error: ...`, with status 1.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::AsyncTypedCommands;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{sleep, timeout};
use wsproto::extensions::PerMessageDeflate;
use wsproto::session::Shutdown;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{Event, PreparedMessage, TextMessage};

#[path = "../../examples/common/cli.rs"]
mod cli;
#[path = "../../examples/common/signal.rs"]
mod signal;

const DEFAULT_ADDR: &str = "127.0.0.1:9002";
const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
/// The Redis channel every process publishes to and subscribes to.
const CHANNEL: &str = "wsproto-chat";
/// First and longest wait between two attempts to reach Redis.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Bound of a connection attempt, and of the answer to a health-check PING.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a live Redis connection is checked.
const HEALTH_CHECK: Duration = Duration::from_secs(5);
/// Posts the broadcast channel keeps for a slow reader (a client, or the relay).
const CAPACITY: usize = 256;
/// How long the closing handshakes may take once shutdown begins.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

const USAGE: &str =
    "usage: chat_cluster [ADDR] [--redis URL]   (defaults: 127.0.0.1:9002, redis://127.0.0.1:6379)";

/// A chat line: who posted it, and the line framed once for every local recipient.
#[derive(Clone, Debug)]
struct Post {
    /// The local client that posted it (not sent back to it); `None` for posts from other
    /// processes and for notices.
    from: Option<SocketAddr>,
    /// Posted in this process: the relay publishes it. Posts from Redis are not.
    local: bool,
    message: PreparedMessage,
}

impl Post {
    fn local(from: Option<SocketAddr>, line: String) -> Self {
        Post { from, local: true, message: PreparedMessage::text(line) }
    }
}

struct Options {
    addr: String,
    redis: String,
}

/// The options, or `None` after `--help` (usage printed).
fn options() -> Result<Option<Options>, String> {
    let mut options = Options { addr: DEFAULT_ADDR.to_string(), redis: DEFAULT_REDIS.to_string() };
    let mut addr_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => options.redis = args.next().ok_or(format!("--redis needs a URL; {USAGE}"))?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}; {USAGE}")),
            _ if addr_given => return Err(format!("one listening address only, got {arg} too; {USAGE}")),
            _ => {
                options.addr = arg;
                addr_given = true;
            }
        }
    }
    Ok(Some(options))
}

/// A random id for this process, different for every run: 12 hex digits.
fn process_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS: enough randomness to tell processes apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => return cli::fail(message),
    };
    // Checks the URL only; the relay connects (and reconnects) on its own.
    let redis = match redis::Client::open(options.redis.as_str()) {
        Ok(client) => client,
        Err(e) => return cli::fail(format_args!("bad --redis URL {}: {e}", options.redis)),
    };
    let listener = match TcpListener::bind(&options.addr).await {
        Ok(listener) => listener,
        Err(e) => return cli::fail(cli::bind_failed(&options.addr, &e, "chat_cluster -p wsproto-interop")),
    };
    let me: Arc<str> = process_id().into();
    match listener.local_addr() {
        Ok(local) => eprintln!("chat_cluster {me} listening on ws://{local} (Ctrl-C or SIGTERM stops it)"),
        Err(e) => return cli::fail(format_args!("cannot read the listening address: {e}")),
    }
    // Slow readers that fall more than CAPACITY posts behind skip the ones they missed.
    let (posts, _) = broadcast::channel::<Post>(CAPACITY);
    tokio::spawn(relay(redis, options.redis, posts.clone(), me.clone()));
    // As in chat.rs: whole messages, permessage-deflate without context takeover on our side
    // so that each post is compressed once for every client.
    let config =
        UpgradeConfig::default().deflate(|| PerMessageDeflate::new().server_no_context_takeover(true));
    let shutdown = Shutdown::new();
    let stop = signal::stop();
    tokio::pin!(stop);
    let signal = loop {
        let (stream, peer) = match signal::accept_or_stop(&listener, stop.as_mut()).await {
            Ok(accepted) => accepted,
            Err(signal) => break signal,
        };
        let (posts, config, shutdown, me) = (posts.clone(), config.clone(), shutdown.clone(), me.clone());
        tokio::spawn(async move {
            match serve(stream, peer, &me, posts, config, shutdown).await {
                Ok(()) => eprintln!("{peer}: left"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    };
    drop(listener);
    eprintln!("{signal}: closing {} connections with 1001 (going away)", shutdown.live());
    tokio::select! {
        left = shutdown.graceful(CLOSE_DEADLINE) => {
            eprintln!("shut down ({left} connections did not close in time)");
        }
        signal = signal::stop() => eprintln!("{signal} again: stopping without waiting"),
    }
    ExitCode::SUCCESS
}

/// One client: its posts go into the broadcast channel, the others' posts come out of it.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    me: &str,
    posts: broadcast::Sender<Post>,
    config: UpgradeConfig,
    shutdown: Shutdown,
) -> Result<(), wsproto::Error> {
    stream.set_nodelay(true)?;
    let (ws, _) = upgrade::accept(stream, config).await?;
    let mut ws = ws.with_shutdown(&shutdown);
    let mut inbox = posts.subscribe();
    // From here on every post reaches this client: say so (clients and tests wait for it).
    ws.send(TextMessage::new(format!("* welcome {me}/{peer}")).into()).await?;
    let _ = posts.send(Post::local(None, format!("* {me}/{peer} joined")));

    loop {
        tokio::select! {
            event = ws.next() => match event.transpose()? {
                Some(Event::TextMessage(m)) => {
                    // Err only when nobody listens, which cannot happen: we hold a receiver.
                    let _ = posts.send(Post::local(Some(peer), format!("{me}/{peer}: {}", m.data)));
                }
                Some(Event::BytesMessage(_)) => {
                    ws.send(TextMessage::new("binary messages are not relayed").into()).await?;
                }
                Some(Event::CloseConnection(_)) => {
                    // The session replies and shuts down; let it finish, relay nothing more.
                    while ws.next().await.is_some() {}
                    break;
                }
                // Pings are answered by the session.
                Some(_) => {}
                None => break,
            },
            post = inbox.recv() => match post {
                Ok(post) if post.from != Some(peer) => ws.send(post.message.into()).await?,
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    ws.send(TextMessage::new(format!("* {n} messages skipped")).into()).await?;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = posts.send(Post::local(None, format!("* {me}/{peer} left")));
    Ok(())
}

/// The relay between this process's broadcast channel and Redis: connects, relays until the
/// connection is lost, waits (backoff), connects again; forever.
async fn relay(client: redis::Client, url: String, posts: broadcast::Sender<Post>, me: Arc<str>) {
    let mut inbox = posts.subscribe();
    let mut backoff = BACKOFF_MIN;
    loop {
        match timeout(REDIS_TIMEOUT, connect(&client)).await {
            Ok(Ok((sink, stream, publisher))) => {
                backoff = BACKOFF_MIN;
                // What was posted while Redis was away stays local: start from the next post.
                let missed = inbox.len();
                inbox = inbox.resubscribe();
                if missed > 0 {
                    // Exact: a receiver counts what it has not received, also past the capacity.
                    eprintln!(
                        "redis: {missed} posts made while Redis was unreachable were delivered locally only"
                    );
                }
                eprintln!("redis: relaying through {url} (channel {CHANNEL}, process {me})");
                let lost = relaying(sink, stream, publisher, &mut inbox, &posts, &me).await;
                eprintln!("redis: connection lost ({lost}); local delivery continues; reconnecting");
            }
            Ok(Err(e)) => eprintln!(
                "redis: cannot reach {url} ({e}); local delivery continues; retrying in {:.1} s",
                backoff.as_secs_f64()
            ),
            Err(_) => eprintln!(
                "redis: no answer from {url} within {} s; local delivery continues; retrying in {:.1} s",
                REDIS_TIMEOUT.as_secs(),
                backoff.as_secs_f64()
            ),
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A subscription to [`CHANNEL`] and a connection to publish on (a subscribed connection
/// cannot publish).
async fn connect(
    client: &redis::Client,
) -> redis::RedisResult<(PubSubSink, PubSubStream, MultiplexedConnection)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.subscribe(CHANNEL).await?;
    let publisher = client.get_multiplexed_async_connection().await?;
    Ok((sink, stream, publisher))
}

/// Relays both ways until the connection fails; returns why.
async fn relaying(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    mut publisher: MultiplexedConnection,
    inbox: &mut broadcast::Receiver<Post>,
    posts: &broadcast::Sender<Post>,
    me: &str,
) -> String {
    let mut health = tokio::time::interval(HEALTH_CHECK);
    health.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => receive(message.get_payload_bytes(), posts, me),
                None => return "the subscription ended".to_string(),
            },
            post = inbox.recv() => match post {
                Ok(post) if post.local => {
                    let sender = post.from.map_or_else(|| "-".to_string(), |from| from.to_string());
                    let line = post.message.payload();
                    let mut payload = Vec::with_capacity(me.len() + sender.len() + 2 + line.len());
                    for part in [me.as_bytes(), b"\n", sender.as_bytes(), b"\n", line] {
                        payload.extend_from_slice(part);
                    }
                    // Not retried: a post is published at most once, so never twice.
                    if let Err(e) = publisher.publish(CHANNEL, payload).await {
                        return format!("publishing failed: {e}");
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => eprintln!("redis: {n} posts not relayed (publishing fell behind)"),
                Err(RecvError::Closed) => return "the broadcast channel closed".to_string(),
            },
            _ = health.tick() => {
                let publishing = timeout(REDIS_TIMEOUT, publisher.ping());
                // A subscribed connection answers ["pong", ""]: any answer will do.
                let subscribed = timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>());
                match tokio::join!(publishing, subscribed) {
                    (Ok(Ok(_)), Ok(Ok(_))) => {}
                    (Ok(Err(e)), _) | (_, Ok(Err(e))) => return format!("PING failed: {e}"),
                    _ => return format!("no answer to PING within {} s", REDIS_TIMEOUT.as_secs()),
                }
            }
        }
    }
}

/// A message from the Redis channel: another process's post for our clients.
fn receive(payload: &[u8], posts: &broadcast::Sender<Post>, me: &str) {
    let mut parts = payload.splitn(3, |&b| b == b'\n');
    let (Some(process), Some(_sender), Some(line)) = (parts.next(), parts.next(), parts.next()) else {
        eprintln!("redis: ignored a message that is not <process>\\n<sender>\\n<line>");
        return;
    };
    if process == me.as_bytes() {
        return; // ours, delivered locally already
    }
    match std::str::from_utf8(line) {
        Ok(line) => {
            let _ = posts.send(Post {
                from: None,
                local: false,
                message: PreparedMessage::text(line.to_string()),
            });
        }
        Err(_) => eprintln!("redis: ignored a message whose line is not UTF-8"),
    }
}

//! The sans-IO session lifecycle (`wsproto::Lifecycle`) driven with explicit time, over a real
//! `Connection` whose peer (a second `Connection`, or raw bytes) the fuzzer controls. The
//! driver follows the tokio `Session`: owed events are written before the application's,
//! deadlines are handled when they pass, the write side stalls and progresses, the phases are
//! acted on (read, shut down, drain, drop).
//!
//! Invariants: no panic; the phase only moves forward and `Done` is final; an event from
//! `poll_transmit` is always accepted by the connection in the state it was polled for; an
//! admitted, well-formed application event is accepted too; at most one close frame is sent
//! and nothing after it; `close_sent()` matches what was written; `closing()` never reverts;
//! deadlines make progress (handling the passed ones ends within a few rounds, and a timer
//! firing before its deadline changes nothing, as the Session's lazy timer needs); shutting
//! down, draining and waiting for a close reply are bounded by a deadline; `poll_error`
//! reports at most one timeout, the one `timed_out()` gives; the owed queue stays small.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsproto::{
    BytesMessage, CloseConnection, Connection, ConnectionState, ConnectionType, Event, KeySource, Lifecycle,
    LifecyclePhase, Ping, Pong, SessionConfig, TextMessage,
};
use wsproto_fuzz::config;

/// Durations (ms) the fuzzer picks from for the configuration: zero and tiny ones reach the
/// edge cases, the default-like ones the usual schedule.
const MS: [u64; 8] = [0, 1, 5, 50, 200, 1_000, 10_000, 20_000];

/// Close codes an application may send.
const CODES: [u16; 4] = [1000, 1001, 1011, 4000];

fn ms(sel: u8) -> Duration {
    Duration::from_millis(MS[usize::from(sel) % MS.len()])
}

fn rank(phase: LifecyclePhase) -> u8 {
    match phase {
        LifecyclePhase::Open => 0,
        LifecyclePhase::ShuttingDown => 1,
        LifecyclePhase::Draining => 2,
        LifecyclePhase::Done => 3,
        _ => 4,
    }
}

/// A little reader over the fuzz input; zeroes once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = usize::from(self.byte()).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head.to_vec()
    }
}

struct Driver {
    now: Instant,
    life: Lifecycle,
    conn: Connection,
    peer: Connection,
    /// Bytes from the peer not yet read by us.
    inbound: BytesMut,
    /// Bytes we wrote, not yet taken by the transport.
    outbound: BytesMut,
    /// The transport does not take bytes.
    stalled: bool,
    /// The last ping the peer received from us (to answer keepalives).
    peer_ping: Option<bytes::Bytes>,
    closes_sent: u32,
    sent_after_close: bool,
    errors_reported: u32,
    was_closing: bool,
    max_rank: u8,
}

impl Driver {
    fn state(&self) -> ConnectionState {
        self.conn.state()
    }

    fn phase(&self) -> LifecyclePhase {
        self.life.phase()
    }

    /// Writes `event` to the connection; reports whether it was accepted.
    fn write(&mut self, event: &Event) -> bool {
        let ok = self.conn.send(event.clone(), &mut self.outbound).is_ok();
        if ok {
            if self.closes_sent > 0 {
                self.sent_after_close = true;
            }
            if matches!(event, Event::CloseConnection(_)) {
                self.closes_sent += 1;
            }
        }
        ok
    }

    /// The transport takes what we wrote (when it is not stalled): the peer reads it.
    fn flush(&mut self) {
        if self.stalled || self.outbound.is_empty() {
            return;
        }
        let bytes = self.outbound.split();
        if self.peer.receive_data(&bytes).is_ok() {
            while let Some(event) = self.peer.next_event() {
                if let Event::Ping(p) = event {
                    self.peer_ping = Some(p.payload);
                }
            }
        }
    }

    /// The Session's `poll_write_owed`: owed events first, as far as the transport takes them.
    fn write_owed(&mut self) {
        if !matches!(self.phase(), LifecyclePhase::Open | LifecyclePhase::ShuttingDown) {
            return;
        }
        if !self.life.has_owed() {
            return;
        }
        if self.stalled {
            self.life.handle_write_stalled(self.now);
            return;
        }
        let mut count = 0;
        while let Some(event) = self.life.poll_transmit(self.state()) {
            count += 1;
            assert!(count <= 3, "the owed queue grew: {count} events");
            assert!(!self.life.close_sent(), "{event:?} owed after our close was sent");
            let state = self.state();
            assert!(self.write(&event), "poll_transmit gave {event:?}, refused in {state:?}");
            self.life.handle_sent(self.now, &event);
        }
        self.flush();
        self.life.handle_write_progress();
    }

    /// The Session's `poll_timers`: handles every deadline passed by `now`.
    fn fire_timers(&mut self) {
        let mut rounds = 0;
        while let Some(deadline) = self.life.poll_timeout() {
            if deadline > self.now {
                break;
            }
            rounds += 1;
            assert!(rounds <= 8, "handle_timeout makes no progress at {deadline:?} ({:?})", self.life);
            self.life.handle_timeout(self.now);
            if self.phase() == LifecyclePhase::Done {
                break;
            }
        }
    }

    /// The Session's timer fired although the deadline moved later: nothing happens.
    fn spurious_timer(&mut self) {
        if self.life.poll_timeout().is_some_and(|t| t <= self.now) {
            return;
        }
        let (phase, timeout, owed) = (self.phase(), self.life.poll_timeout(), self.life.has_owed());
        self.life.handle_timeout(self.now);
        assert_eq!(self.phase(), phase, "a timer before its deadline changed the phase");
        assert_eq!(self.life.poll_timeout(), timeout, "a timer before its deadline moved the deadline");
        assert_eq!(self.life.has_owed(), owed, "a timer before its deadline queued something");
    }

    /// Hands events from the connection to the lifecycle (Open) or discards them (Draining).
    fn read_events(&mut self) {
        loop {
            match self.phase() {
                LifecyclePhase::Open => {
                    let Some(event) = self.conn.next_event() else { return };
                    self.life.handle_received(self.now, &event);
                    // Answered at once if the transport takes it.
                    self.write_owed();
                }
                LifecyclePhase::Draining => {
                    while self.conn.next_event().is_some() {}
                    return;
                }
                _ => return,
            }
        }
    }

    /// `n` bytes of the peer's arrive.
    fn deliver(&mut self, n: usize) {
        if !matches!(self.phase(), LifecyclePhase::Open | LifecyclePhase::Draining) {
            return;
        }
        let n = n.min(self.inbound.len());
        let chunk = self.inbound.split_to(n);
        if self.conn.receive_data(&chunk).is_err() {
            // The codec's error: the Session reports it and ends.
            self.life.handle_transport_error();
            return;
        }
        self.read_events();
    }

    /// The peer's EOF (after what it sent).
    fn eof(&mut self) {
        if !matches!(self.phase(), LifecyclePhase::Open | LifecyclePhase::Draining) {
            return;
        }
        let rest = self.inbound.split();
        if self.conn.receive_data(&rest).is_ok() {
            self.read_events();
        }
        if !matches!(self.phase(), LifecyclePhase::Open | LifecyclePhase::Draining) {
            return;
        }
        self.conn.receive_eof();
        self.read_events();
        if matches!(self.phase(), LifecyclePhase::Open | LifecyclePhase::Draining) {
            self.life.handle_eof(self.now);
        }
    }

    /// The application sends `event` (the Session's `poll_ready` then `start_send`).
    fn app_send(&mut self, event: Event) {
        if self.phase() == LifecyclePhase::Done {
            return;
        }
        self.write_owed();
        if self.life.has_owed() || self.phase() == LifecyclePhase::Done {
            // Pending behind the owed events.
            return;
        }
        let state = self.state();
        if !self.life.admits(state, &event) {
            return;
        }
        assert!(self.write(&event), "admitted {event:?} refused in {state:?}");
        if !matches!(event, Event::TextMessage(_) | Event::BytesMessage(_)) {
            self.life.handle_sent(self.now, &event);
        }
        self.flush();
    }

    /// The Session's `poll_shut_down`: once nothing is owed and the flush completes.
    fn shut_down(&mut self) {
        if self.phase() != LifecyclePhase::ShuttingDown || self.life.has_owed() || self.stalled {
            return;
        }
        self.flush();
        self.peer.receive_eof();
        while self.peer.next_event().is_some() {}
        self.life.handle_shut_down(self.now);
    }

    fn peer_send(&mut self, event: Event) {
        let mut wire = BytesMut::new();
        if self.peer.send(event, &mut wire).is_ok() {
            self.inbound.extend_from_slice(&wire);
        }
    }

    /// The invariants that hold between any two operations.
    fn check(&mut self) {
        let phase = self.phase();
        let r = rank(phase);
        assert!(r < 4, "unknown phase {phase:?}");
        assert!(r >= self.max_rank, "the phase went back to {phase:?}");
        self.max_rank = r;
        let closing = self.life.closing();
        assert!(closing || !self.was_closing, "closing() reverted");
        self.was_closing = closing;
        assert!(self.closes_sent <= 1, "{} close frames sent", self.closes_sent);
        assert!(!self.sent_after_close, "something was sent after our close");
        assert_eq!(
            self.life.close_sent(),
            self.closes_sent == 1,
            "close_sent() disagrees with what was written"
        );
        if let Some(timeout) = self.life.poll_error() {
            self.errors_reported += 1;
            assert!(self.errors_reported <= 1, "a second timeout reported");
            assert_eq!(self.life.timed_out(), Some(timeout), "poll_error disagrees with timed_out");
        }
        match phase {
            LifecyclePhase::Done => {
                assert_eq!(self.life.poll_timeout(), None, "a deadline once done");
                assert!(!self.life.has_owed(), "owed events once done");
            }
            LifecyclePhase::ShuttingDown | LifecyclePhase::Draining => {
                assert!(self.life.poll_timeout().is_some(), "{phase:?} without a deadline");
            }
            _ => {
                if self.life.close_sent() {
                    assert!(
                        self.life.poll_timeout().is_some(),
                        "waiting for the close reply without a deadline"
                    );
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte();
    let timings = [input.byte(), input.byte(), input.byte()];
    let role = if flags & 1 == 0 { ConnectionType::Server } else { ConnectionType::Client };
    let peer_role = if role.is_client() { ConnectionType::Server } else { ConnectionType::Client };
    let session = SessionConfig::default()
        .auto_pong(flags & 2 == 0)
        .auto_close_reply(flags & 4 == 0)
        .keepalive((flags & 8 == 0).then(|| ms(timings[0])), ms(timings[0] >> 3))
        .idle_timeout((flags & 16 != 0).then(|| ms(timings[1])))
        .send_timeout((flags & 32 == 0).then(|| ms(timings[1] >> 3)))
        .close_timeout(ms(timings[2]))
        .linger(ms(timings[2] >> 3));
    let t0 = Instant::now();
    let mut d = Driver {
        now: t0,
        life: Lifecycle::new(session, role, t0),
        conn: Connection::new(role, config().key_source(KeySource::fixed([1, 2, 3, 4]))),
        peer: Connection::new(peer_role, config().key_source(KeySource::fixed([5, 6, 7, 8]))),
        inbound: BytesMut::new(),
        outbound: BytesMut::new(),
        stalled: false,
        peer_ping: None,
        closes_sent: 0,
        sent_after_close: false,
        errors_reported: 0,
        was_closing: false,
        max_rank: 0,
    };
    let mut ops = 0;
    while !input.0.is_empty() && ops < 512 {
        ops += 1;
        let op = input.byte();
        match op % 20 {
            // Time passes, and the deadlines passed are handled.
            0 | 1 => {
                let step = u64::from(input.byte());
                let step = if op & 0x80 != 0 { step * 100 } else { step };
                d.now += Duration::from_millis(step);
                d.fire_timers();
            }
            // Exactly to the next deadline.
            2 => {
                if let Some(t) = d.life.poll_timeout() {
                    d.now = d.now.max(t);
                    d.fire_timers();
                }
            }
            3 => d.spurious_timer(),
            // The peer's bytes arrive, in pieces.
            4 | 5 => d.deliver(usize::from(input.byte()) + 1),
            // The peer sends.
            6 => {
                let text = String::from_utf8_lossy(&input.bytes(64)).into_owned();
                d.peer_send(TextMessage::new(text).into());
            }
            7 => d.peer_send(Ping::new(input.bytes(125)).into()),
            8 => {
                // Answers our last ping, or a pong of its own.
                let payload = match d.peer_ping.take() {
                    Some(p) if op & 0x80 == 0 => p,
                    _ => input.bytes(125).into(),
                };
                d.peer_send(Pong::new(payload).into());
            }
            9 => {
                let code = CODES[usize::from(input.byte()) % CODES.len()];
                d.peer_send(CloseConnection::new(code).into());
            }
            // Garbage (or a frame the fuzzer wrote) from the peer.
            10 => {
                let raw = input.bytes(255);
                d.inbound.extend_from_slice(&raw);
            }
            11 => d.eof(),
            // The application.
            12 => {
                let text = String::from_utf8_lossy(&input.bytes(64)).into_owned();
                d.app_send(TextMessage::new(text).into());
            }
            13 => {
                let event: Event = match input.byte() % 3 {
                    0 => BytesMessage::new(input.bytes(64)).into(),
                    1 => Ping::new(input.bytes(125)).into(),
                    _ => Pong::new(input.bytes(125)).into(),
                };
                d.app_send(event);
            }
            14 => {
                let code = CODES[usize::from(input.byte()) % CODES.len()];
                if op & 0x80 == 0 {
                    d.life.handle_close_request(CloseConnection::new(code));
                } else {
                    // The application answers (or starts) the close itself.
                    d.app_send(CloseConnection::new(code).into());
                }
            }
            15 => {
                d.life.handle_shutdown_request();
            }
            // The transport.
            16 => {
                d.stalled = true;
                d.life.handle_write_stalled(d.now);
            }
            17 => {
                d.stalled = false;
                d.flush();
                d.life.handle_write_progress();
            }
            18 => d.shut_down(),
            _ => {
                if op & 0x80 != 0 {
                    d.life.handle_transport_error();
                } else {
                    d.flush();
                }
            }
        }
        // The Session's loop: deadlines, then owed events, then reads of what is buffered.
        d.fire_timers();
        d.write_owed();
        d.check();
    }
    // Run it out: with time passing and the peer quiet, the connection must end.
    d.stalled = false;
    for _ in 0..64 {
        if d.phase() == LifecyclePhase::Done {
            break;
        }
        d.write_owed();
        d.shut_down();
        match d.life.poll_timeout() {
            Some(t) => {
                d.now = d.now.max(t);
                d.fire_timers();
            }
            // Nothing bounds the wait (no keepalive or idle timeout, or the application owes
            // the close reply): allowed only while open.
            None => break,
        }
        d.check();
    }
    let open_unbounded = d.phase() == LifecyclePhase::Open && d.life.poll_timeout().is_none();
    assert!(d.phase() == LifecyclePhase::Done || open_unbounded, "the connection did not end: {:?}", d.life);
});

use super::*;
use crate::connection::state::ConnectionState::{Closed, LocalClosing, Open, RemoteClosing};
use crate::event::{Pong, TextMessage};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn server(config: SessionConfig, t0: Instant) -> Lifecycle {
    Lifecycle::new(config, ConnectionType::Server, t0)
}

fn peer_close(code: u16) -> Event {
    CloseConnection::received(code.into(), "bye".into(), CloseSource::Peer, true).into()
}

fn answer_to_ours() -> Event {
    CloseConnection::received(CloseCode::NORMAL_CLOSURE, String::new(), CloseSource::Peer, false).into()
}

/// Takes the next owed event and reports it sent, as a driver does.
fn transmit(life: &mut Lifecycle, state: ConnectionState, now: Instant) -> Option<Event> {
    let event = life.poll_transmit(state)?;
    life.handle_sent(now, &event);
    Some(event)
}

#[test]
fn pings_are_answered_and_keepalive_measures_the_round_trip() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_received(t0, &Ping::new("hi").into());
    assert_eq!(transmit(&mut life, Open, t0), Some(Pong::new("hi").into()));
    // Quiet for 20 s: a keepalive ping.
    assert_eq!(life.poll_timeout(), Some(t0 + secs(20)));
    life.handle_timeout(t0 + secs(20));
    let Some(Event::Ping(ping)) = transmit(&mut life, Open, t0 + secs(20)) else {
        panic!("a keepalive ping")
    };
    assert_eq!(life.poll_timeout(), Some(t0 + secs(40)), "its pong is due within 20 s");
    life.handle_received(t0 + secs(20) + Duration::from_millis(35), &Pong::new(ping.payload).into());
    assert_eq!(life.rtt(), Some(Duration::from_millis(35)));
    assert_eq!(life.poll_error(), None);
}

#[test]
fn keepalive_round_trips_are_smoothed_as_tcp_does() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    assert_eq!((life.rtt(), life.smoothed_rtt()), (None, None));
    let mut now = t0;
    for (k, rtt_ms) in [40u64, 80, 80].into_iter().enumerate() {
        now += secs(20);
        life.handle_timeout(now);
        let Some(Event::Ping(ping)) = transmit(&mut life, Open, now) else { panic!("keepalive ping {k}") };
        now += Duration::from_millis(rtt_ms);
        life.handle_received(now, &Pong::new(ping.payload).into());
        assert_eq!(life.last_received(), now);
    }
    assert_eq!(life.rtt(), Some(Duration::from_millis(80)));
    // 40, then 40·7/8 + 80/8 = 45, then 45·7/8 + 80/8 = 49.375 ms.
    assert_eq!(life.smoothed_rtt(), Some(Duration::from_micros(49_375)));
}

#[test]
fn a_ping_flood_owes_only_the_latest_pong() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    for i in 0..1000u32 {
        life.handle_received(t0, &Ping::new(i.to_be_bytes().to_vec()).into());
    }
    assert_eq!(life.poll_transmit(Open), Some(Pong::new(999u32.to_be_bytes().to_vec()).into()));
    assert_eq!(life.poll_transmit(Open), None);
}

#[test]
fn unanswered_keepalive_fails_with_1011_then_lingers() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_timeout(t0 + secs(20));
    transmit(&mut life, Open, t0 + secs(20)).expect("a keepalive ping");
    life.handle_timeout(t0 + secs(39));
    assert_eq!(life.poll_error(), None);
    life.handle_timeout(t0 + secs(40));
    assert_eq!(life.poll_error(), Some(Timeout::Keepalive));
    assert_eq!(life.poll_error(), None, "reported once");
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    let Some(Event::CloseConnection(close)) = transmit(&mut life, Open, t0 + secs(40)) else {
        panic!("a close")
    };
    assert_eq!(close.code, CloseCode::INTERNAL_ERROR);
    // The write side shut down: after a failure, even a server drains until the linger time.
    life.handle_shut_down(t0 + secs(40));
    assert_eq!(life.phase(), LifecyclePhase::Draining);
    assert_eq!(life.poll_timeout(), Some(t0 + secs(42)));
    life.handle_timeout(t0 + secs(42));
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

#[test]
fn a_peer_that_stops_reading_is_cut_off_by_the_send_timeout_not_the_keepalive() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_timeout(t0 + secs(20));
    transmit(&mut life, Open, t0 + secs(20)).expect("a keepalive ping");
    // The ping sits in the write buffer: the peer does not read.
    life.handle_write_stalled(t0 + secs(21));
    life.handle_timeout(t0 + secs(40));
    assert_eq!(life.poll_error(), None, "an unread ping is not an unanswered one");
    assert_eq!(life.poll_timeout(), Some(t0 + secs(51)));
    life.handle_timeout(t0 + secs(51));
    assert_eq!(life.poll_error(), Some(Timeout::Send));
    assert_eq!(life.phase(), LifecyclePhase::Done, "nothing can be written to a peer that does not read");
    assert_eq!(life.poll_transmit(Open), None);
}

#[test]
fn write_progress_stops_the_send_timeout() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default().keepalive(None, secs(1)), t0);
    life.handle_write_stalled(t0);
    life.handle_write_stalled(t0 + secs(10));
    assert_eq!(life.poll_timeout(), Some(t0 + secs(30)), "from the first stalled write");
    life.handle_write_progress();
    assert_eq!(life.poll_timeout(), None);
}

#[test]
fn idle_timeout_closes_with_1001() {
    let t0 = Instant::now();
    let config = SessionConfig::default().keepalive(None, secs(1)).idle_timeout(Some(secs(5)));
    let mut life = server(config, t0);
    life.handle_received(t0 + secs(3), &TextMessage::new("x").into());
    assert_eq!(life.poll_timeout(), Some(t0 + secs(8)), "counted from the last receive");
    life.handle_timeout(t0 + secs(8));
    assert_eq!(life.poll_error(), Some(Timeout::Idle));
    let Some(Event::CloseConnection(close)) = life.poll_transmit(Open) else { panic!("a close") };
    assert_eq!(close.code, CloseCode::GOING_AWAY);
}

#[test]
fn the_peers_close_is_answered_and_a_server_is_done_once_shut_down() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_received(t0, &peer_close(1001));
    assert!(life.closing());
    let Some(Event::CloseConnection(reply)) = transmit(&mut life, RemoteClosing, t0) else {
        panic!("the reply")
    };
    assert_eq!(reply.code, CloseCode::GOING_AWAY);
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    life.handle_shut_down(t0);
    assert_eq!(
        life.phase(),
        LifecyclePhase::Done,
        "a server closes the transport first and waits for nothing"
    );
    assert_eq!(life.poll_error(), None);
}

#[test]
fn after_a_clean_close_a_client_drains_until_the_servers_eof() {
    let t0 = Instant::now();
    let mut life = Lifecycle::new(SessionConfig::default(), ConnectionType::Client, t0);
    assert!(life.handle_close_request(CloseConnection::new(1000u16)));
    transmit(&mut life, Open, t0).expect("our close");
    assert_eq!(life.poll_timeout(), Some(t0 + secs(10)), "the close timeout");
    life.handle_received(t0 + secs(1), &answer_to_ours());
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    life.handle_shut_down(t0 + secs(1));
    assert_eq!(life.phase(), LifecyclePhase::Draining);
    assert_eq!(life.poll_timeout(), Some(t0 + secs(3)), "bounded by the linger time");
    life.handle_eof(t0 + secs(2));
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

#[test]
fn a_close_not_answered_in_time_ends_the_connection() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_close_request(CloseConnection::new(1000u16));
    transmit(&mut life, Open, t0).expect("our close");
    life.handle_timeout(t0 + secs(9));
    assert_eq!(life.phase(), LifecyclePhase::Open);
    life.handle_timeout(t0 + secs(10));
    assert_eq!(life.poll_error(), Some(Timeout::Close));
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

#[test]
fn graceful_shutdown_closes_with_1001_ahead_of_owed_pongs_and_completes_the_handshake() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_received(t0, &Ping::new("p").into());
    assert!(life.handle_shutdown_request());
    assert!(!life.handle_shutdown_request(), "once");
    let Some(Event::CloseConnection(close)) = transmit(&mut life, Open, t0) else {
        panic!("the close first")
    };
    assert_eq!((close.code, close.reason.as_deref()), (CloseCode::GOING_AWAY, Some("server shutting down")));
    assert_eq!(life.poll_transmit(LocalClosing), None, "the pong is moot once we closed");
    // The peer may still send messages before it answers: they reach the application.
    life.handle_received(t0, &TextMessage::new("late").into());
    assert_eq!(life.phase(), LifecyclePhase::Open);
    life.handle_received(t0 + secs(1), &answer_to_ours());
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    life.handle_shut_down(t0 + secs(1));
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

#[test]
fn graceful_shutdown_does_nothing_once_the_close_has_begun() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default().auto_close_reply(false), t0);
    life.handle_received(t0, &peer_close(1000));
    assert!(!life.handle_shutdown_request());
    assert_eq!(life.poll_transmit(RemoteClosing), None, "the application answers");
}

#[test]
fn messages_sent_after_the_close_began_are_discarded_not_refused() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    let text: Event = TextMessage::new("echo").into();
    assert!(life.admits(Open, &text));
    life.handle_shutdown_request();
    assert!(!life.admits(Open, &text), "queued close: the echo loop's send is dropped");
    transmit(&mut life, Open, t0);
    assert!(!life.admits(LocalClosing, &text));
    assert!(!life.admits(LocalClosing, &Ping::new("").into()));
    assert!(!life.admits(LocalClosing, &CloseConnection::new(1000u16).into()), "one close");

    let mut life = server(SessionConfig::default().auto_close_reply(false), t0);
    life.handle_received(t0, &peer_close(1000));
    assert!(!life.admits(RemoteClosing, &text));
    assert!(life.admits(RemoteClosing, &CloseConnection::new(1000u16).into()), "the reply is written");
    assert!(!life.admits(Closed, &CloseConnection::new(1000u16).into()));
}

#[test]
fn an_application_close_reply_completes_the_handshake() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default().auto_close_reply(false), t0);
    life.handle_received(t0, &peer_close(1000));
    assert_eq!(life.poll_timeout(), None, "no timeout runs while the application answers");
    assert_eq!(life.phase(), LifecyclePhase::Open);
    life.handle_sent(t0, &CloseConnection::new(1000u16).into());
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
}

#[test]
fn a_violation_answers_with_its_close_and_lingers() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    let violation = CloseConnection::received(
        CloseCode::PROTOCOL_ERROR,
        "bad frame".into(),
        CloseSource::Violation(crate::error::PeerViolation::UnmaskedFrame),
        true,
    );
    life.handle_received(t0, &violation.into());
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    let Some(Event::CloseConnection(reply)) = transmit(&mut life, RemoteClosing, t0) else {
        panic!("the reply")
    };
    assert_eq!(reply.code, CloseCode::PROTOCOL_ERROR);
    life.handle_shut_down(t0);
    assert_eq!(life.phase(), LifecyclePhase::Draining, "a peer still sending reads our close, not a reset");
    assert_eq!(life.poll_timeout(), Some(t0 + secs(2)));
    life.handle_eof(t0 + secs(1));
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

#[test]
fn shutting_down_against_a_peer_that_does_not_read_ends_within_the_linger_time() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_received(t0, &peer_close(1000));
    transmit(&mut life, RemoteClosing, t0);
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    // The shutdown's flush never completes.
    life.handle_write_stalled(t0);
    assert_eq!(life.poll_timeout(), Some(t0 + secs(2)));
    life.handle_timeout(t0 + secs(2));
    assert_eq!(life.phase(), LifecyclePhase::Done);
    assert_eq!(life.poll_error(), None, "a completed closing handshake is not a timeout");
}

#[test]
fn eof_without_a_close_ends_the_connection() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    let ended = CloseConnection::received(
        CloseCode::ABNORMAL_CLOSURE,
        String::new(),
        CloseSource::TransportEnded,
        false,
    );
    life.handle_received(t0, &ended.into());
    assert_eq!(life.phase(), LifecyclePhase::ShuttingDown);
    assert_eq!(life.poll_transmit(Closed), None);
    life.handle_shut_down(t0);
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

#[test]
fn a_transport_error_ends_the_connection_at_once() {
    let t0 = Instant::now();
    let mut life = server(SessionConfig::default(), t0);
    life.handle_received(t0, &Ping::new("p").into());
    life.handle_transport_error();
    assert_eq!(life.phase(), LifecyclePhase::Done);
    assert_eq!(life.poll_transmit(Open), None);
    assert_eq!(life.poll_timeout(), None);
}

#[test]
fn automations_can_be_switched_off() {
    let t0 = Instant::now();
    let config = SessionConfig::default().auto_pong(false).auto_close_reply(false).keepalive(None, secs(1));
    let mut life = server(config, t0);
    life.handle_received(t0, &Ping::new("x").into());
    life.handle_received(t0, &peer_close(1001));
    assert_eq!(life.poll_transmit(RemoteClosing), None);
    assert_eq!(life.poll_timeout(), None);
}

#[test]
fn timeouts_of_duration_max_mean_never_not_a_panic() {
    let t0 = Instant::now();
    let max = Duration::MAX;
    let config = SessionConfig::default()
        .keepalive(Some(max), max)
        .idle_timeout(Some(max))
        .send_timeout(Some(max))
        .close_timeout(max)
        .linger(max);
    let mut life = server(config, t0);
    let far = life.poll_timeout().expect("keepalive and idle deadlines");
    assert!(far > t0 + secs(50 * 365 * 24 * 3600));
    life.handle_write_stalled(t0);
    life.handle_timeout(t0 + secs(1000 * 24 * 3600));
    assert_eq!(life.phase(), LifecyclePhase::Open);
    assert_eq!(life.poll_error(), None);
    // Our close, then the peer's silence: still waiting (the close timeout is "never").
    life.handle_write_progress();
    life.handle_close_request(CloseConnection::new(CloseCode::NORMAL_CLOSURE));
    let close = transmit(&mut life, Open, t0).expect("our close");
    assert!(matches!(close, Event::CloseConnection(_)));
    assert!(life.poll_timeout().is_some());
    life.handle_timeout(t0 + secs(1000 * 24 * 3600));
    assert_eq!(life.poll_error(), None);
    // A transport error still ends it at once.
    life.handle_transport_error();
    assert_eq!(life.phase(), LifecyclePhase::Done);
}

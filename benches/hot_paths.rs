//! Microbenchmarks of the hot paths: encoding an event frame, checking a REST signature and a
//! channel auth, and fanning one event out to many in-process subscribers.
//!
//! ```text
//! cargo bench --bench hot_paths            # all
//! cargo bench --bench hot_paths -- fan_out # one group
//! ```
//!
//! The end-to-end load example against a running server is `examples/load.rs`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pusher_local::apps::App;
use pusher_local::auth::channel::{auth_value, check, subscription_string};
use pusher_local::auth::request::{sign_query, SignedRequest};
use pusher_local::broker::Envelope;
use pusher_local::protocol::{server, ChannelName, SocketId};
use pusher_local::registry::{ChannelRegistry, Delivery, Joining, Outbox, OutboxReceiver};

const KEY: &str = "app-key";
const SECRET: &str = "app-secret";
/// About the size of a typical event's data (the shared harness sends ≈100 bytes).
const DATA: &str =
    r#"{"seq":12345,"ts":1795377597123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.bench_function("event_frame", |b| {
        b.iter(|| server::event(black_box("my-channel"), black_box("my-event"), black_box(DATA), None))
    });
    group.bench_function("presence_client_event_frame", |b| {
        b.iter(|| {
            server::event(black_box("presence-room"), black_box("client-typing"), black_box(DATA), Some("\"42\""))
        })
    });
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let mut group = c.benchmark_group("signature");
    let body =
        format!(r#"{{"name":"my-event","channel":"my-channel","data":{}}}"#, serde_json::to_string(DATA).unwrap());
    let now = SystemTime::now();
    let timestamp = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let path = "/apps/1/events";
    let query = sign_query(KEY, SECRET, "POST", path, body.as_bytes(), timestamp, &[]);
    group.bench_function("rest_parse_and_verify", |b| {
        b.iter(|| {
            let request = SignedRequest::parse("POST", path, black_box(&query)).unwrap();
            request.verify(SECRET, black_box(body.as_bytes()), now, Duration::from_secs(600)).unwrap();
        })
    });
    let signed = subscription_string("1234.5678", "private-chat", None);
    let auth = auth_value(KEY, SECRET, &signed);
    group.bench_function("private_channel_auth", |b| {
        b.iter(|| check(black_box(&auth), KEY, SECRET, subscription_string("1234.5678", "private-chat", None)).unwrap())
    });
    group.finish();
}

/// `subscribers` sockets on one channel, with the receiving ends kept so queues can be drained.
fn subscribed(subscribers: u32) -> (ChannelRegistry, App, ChannelName, Vec<OutboxReceiver>) {
    let registry = ChannelRegistry::new();
    let app = App::new("1", KEY, SECRET);
    let channel = ChannelName::parse("my-channel", 200).unwrap();
    let mut receivers = Vec::new();
    for i in 0..subscribers {
        let (outbox, mut receiver) = Outbox::new(1 << 20);
        let socket = SocketId::new(1, i);
        registry
            .connect(
                &app,
                socket,
                &outbox,
                pusher_local::registry::Client::new(pusher_local::registry::Transport::Ws, None, None),
            )
            .unwrap();
        let joining = Joining { app: Arc::new(app.clone()), socket, channel: channel.clone(), member: None };
        registry.subscribe(&joining, None).unwrap();
        receiver.take_queued();
        receivers.push(receiver);
    }
    (registry, app, channel, receivers)
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    for subscribers in [100u32, 1000, 5000] {
        let (registry, app, channel, mut receivers) = subscribed(subscribers);
        group.throughput(Throughput::Elements(u64::from(subscribers)));
        group.bench_with_input(BenchmarkId::from_parameter(subscribers), &subscribers, |b, _| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                for i in 0..iters {
                    let start = Instant::now();
                    // What AppState::publish does per event: encode once, share the bytes.
                    let frame = server::event(channel.as_str(), "my-event", DATA, None);
                    let delivery = Delivery::Event { channel: channel.clone(), frame, except: None, cache: None };
                    let envelope = Envelope { app_id: app.id.clone(), delivery };
                    black_box(registry.fan_out(&envelope.app_id, &envelope.delivery));
                    measured += start.elapsed();
                    if i % 64 == 63 {
                        // Drain outside the measured time, as the socket writers would.
                        receivers.iter_mut().for_each(|r| drop(r.take_queued()));
                    }
                }
                receivers.iter_mut().for_each(|r| drop(r.take_queued()));
                measured
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = encode, signatures, fan_out
}
criterion_main!(benches);

//! The broker suite: the same behaviour on the embedded broker (one node: every "node" below is
//! that one server) and on Redis (a real `redis-server` started by the test; two or three
//! in-process nodes on one prefix, so clients on different nodes meet only through Redis). Then
//! the Redis-only cases: a node killed with SIGKILL, and Redis itself crashing and coming back.
//!
//! See: issue 5. Waits are bounded (`WAIT`, or a deadline for "within 10 s").

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::redis::RedisServer;
use crate::support::*;

/// Which broker a case runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Local,
    Redis,
}

/// The nodes of one case, and the Redis behind them.
struct Nodes {
    servers: Vec<TestServer>,
    redis: Option<RedisServer>,
}

fn prefix() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

fn redis_config(url: &str, prefix: &str) -> pusher_local::Config {
    let mut config = config();
    config.redis_url = Some(url.to_owned());
    config.redis_prefix = prefix.to_owned();
    config
}

impl Nodes {
    /// `n` nodes on Redis, or the single embedded server. `None`: skipped (no redis-server).
    async fn start(kind: Kind, n: usize) -> Option<Nodes> {
        Self::start_with(kind, n, config).await
    }

    async fn start_with(kind: Kind, n: usize, make: fn() -> pusher_local::Config) -> Option<Nodes> {
        let prefix = prefix();
        match kind {
            Kind::Local => Some(Nodes { servers: vec![TestServer::with(make()).await], redis: None }),
            Kind::Redis => {
                let redis = RedisServer::start()?;
                let mut servers = Vec::new();
                for _ in 0..n {
                    let mut config = make();
                    config.redis_url = Some(redis.url());
                    config.redis_prefix.clone_from(&prefix);
                    servers.push(TestServer::with(config).await);
                }
                Some(Nodes { servers, redis: Some(redis) })
            }
        }
    }

    fn node(&self, i: usize) -> &TestServer {
        &self.servers[i % self.servers.len()]
    }

    async fn stop(self) {
        for server in self.servers {
            server.stop().await;
        }
    }
}

/// Runs one async case on both brokers: `NAME_on_local` and `NAME_on_redis`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_local() {
                super::$name(super::Kind::Local).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_redis() {
                super::$name(super::Kind::Redis).await;
            }
        }
    };
}

fn presence_data(user: &str) -> String {
    json!({"user_id": user, "user_info": {"name": user}}).to_string()
}

on_both!(an_event_reaches_every_subscriber_on_every_node_exactly_once_except_the_socket_id);
async fn an_event_reaches_every_subscriber_on_every_node_exactly_once_except_the_socket_id(kind: Kind) {
    let Some(nodes) = Nodes::start(kind, 3).await else { return };
    let mut a = nodes.node(0).client().await;
    let mut b = nodes.node(1).client().await;
    let mut c = nodes.node(2).client().await;
    for client in [&mut a, &mut b, &mut c] {
        client.subscribe_public("news").await;
    }
    let body = json!({"name": "flash", "channels": ["news"], "data": "{\"n\":1}", "socket_id": c.socket_id});
    let (status, _) = nodes.node(1).api().post("/apps/1/events", &body).await;
    assert_eq!(status, 200);
    for client in [&mut a, &mut b] {
        let frame = client.expect("flash").await;
        assert_eq!(frame["data"], "{\"n\":1}");
        client.assert_alive().await; // nothing else queued: exactly once
    }
    c.assert_alive().await; // the excluded socket got nothing
    nodes.stop().await;
}

on_both!(client_events_cross_nodes_and_skip_their_sender);
async fn client_events_cross_nodes_and_skip_their_sender(kind: Kind) {
    let Some(nodes) = Nodes::start(kind, 2).await else { return };
    let mut a = nodes.node(0).client().await;
    let mut b = nodes.node(1).client().await;
    a.subscribe_signed("private-chat", None).await;
    b.subscribe_signed("private-chat", None).await;
    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "a"}})).await;
    let frame = b.expect("client-typing").await;
    assert_eq!(frame["channel"], "private-chat");
    a.assert_alive().await;
    nodes.stop().await;
}

on_both!(presence_is_one_roster_with_member_added_and_removed_once_per_user);
async fn presence_is_one_roster_with_member_added_and_removed_once_per_user(kind: Kind) {
    let Some(nodes) = Nodes::start(kind, 2).await else { return };
    let ch = "presence-room";
    // u1 has a tab on each node; u2 watches from node 1.
    let mut u1_tab1 = nodes.node(0).client().await;
    let succeeded = u1_tab1.subscribe_signed(ch, Some(&presence_data("u1"))).await;
    assert_eq!(succeeded["presence"]["count"], 1);
    let mut u2 = nodes.node(1).client().await;
    let succeeded = u2.subscribe_signed(ch, Some(&presence_data("u2"))).await;
    assert_eq!(succeeded["presence"]["count"], 2, "the roster is cluster-wide: {succeeded}");
    assert_eq!(succeeded["presence"]["hash"]["u1"], json!({"name": "u1"}));
    let added = u1_tab1.expect("pusher_internal:member_added").await;
    assert_eq!(data_of(&added)["user_id"], "u2");
    let mut u1_tab2 = nodes.node(1).client().await;
    let succeeded = u1_tab2.subscribe_signed(ch, Some(&presence_data("u1"))).await;
    assert_eq!(succeeded["presence"]["count"], 2, "one member per user_id: {succeeded}");
    // u1's second tab is no news to anyone.
    u2.assert_alive().await;
    u1_tab1.assert_alive().await;

    let api = nodes.node(0).api();
    let (_, text) = api.get("/apps/1/channels/presence-room/users", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"users": [{"id": "u1"}, {"id": "u2"}]}));
    let (_, text) = api.get("/apps/1/channels/presence-room", &[("info", "user_count,subscription_count")]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"occupied": true, "user_count": 2, "subscription_count": 3})
    );

    // u1 closes one tab: still present. Then the other: member_removed, once.
    drop(u1_tab1);
    u2.assert_alive().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, text) = api.get("/apps/1/channels/presence-room", &[("info", "subscription_count")]).await;
        if serde_json::from_str::<Value>(&text).unwrap()["subscription_count"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed tab still counts: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    u2.assert_alive().await;
    u1_tab2.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}})).await;
    let removed = u2.expect("pusher_internal:member_removed").await;
    assert_eq!(data_of(&removed)["user_id"], "u1");
    u2.assert_alive().await;
    nodes.stop().await;
}

/// Waits until everything `from` published so far has reached `to`: envelopes leave a node
/// in order, so once a marker published after them arrives, they have too.
async fn settle(from: &TestServer, to: &TestServer) {
    let mut marker = to.client().await;
    marker.subscribe_public("settle").await;
    from.api().trigger("settle", "marker", "").await;
    marker.expect("marker").await;
}

on_both!(concurrent_joins_on_several_nodes_give_every_member_each_other_exactly_once);
async fn concurrent_joins_on_several_nodes_give_every_member_each_other_exactly_once(kind: Kind) {
    let Some(nodes) = Nodes::start(kind, 2).await else { return };
    let ch = "presence-crowd";
    let users: Vec<String> = (0..16).map(|i| format!("u{i}")).collect();
    let mut clients = Vec::new();
    for (i, _) in users.iter().enumerate() {
        clients.push(nodes.node(i).client().await);
    }
    // Everyone subscribes at once, half on each node; each remembers its roster.
    let joins = clients.into_iter().zip(&users).map(|(mut client, user)| async move {
        let succeeded = client.subscribe_signed(ch, Some(&presence_data(user))).await;
        let roster: Vec<String> =
            succeeded["presence"]["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
        (client, roster)
    });
    let joined = futures_util::future::join_all(joins).await;
    // Everything announced so far has reached both nodes.
    settle(nodes.node(0), nodes.node(1)).await;
    settle(nodes.node(1), nodes.node(0)).await;
    let mut joined = joined;
    for ((client, known), user) in joined.iter_mut().zip(&users) {
        client.send(json!({"event": "pusher:ping", "data": {}})).await;
        loop {
            let frame = client.recv().await;
            match frame["event"].as_str().unwrap() {
                "pusher:pong" => break,
                "pusher_internal:member_added" => {
                    let id = data_of(&frame)["user_id"].as_str().unwrap().to_owned();
                    assert!(!known.contains(&id), "{user} heard of {id} twice: {known:?}");
                    known.push(id);
                }
                other => panic!("{user} got {other}: {frame}"),
            }
        }
        known.sort();
        let mut all = users.clone();
        all.sort();
        assert_eq!(*known, all, "{user} knows every member once");
    }
    nodes.stop().await;
}

on_both!(channel_queries_and_subscription_count_answer_for_the_whole_cluster);
async fn channel_queries_and_subscription_count_answer_for_the_whole_cluster(kind: Kind) {
    fn counting() -> pusher_local::Config {
        let mut config = config();
        config.apps[0].subscription_count = true;
        config
    }
    let Some(nodes) = Nodes::start_with(kind, 2, counting).await else { return };
    let mut a = nodes.node(0).client().await;
    a.subscribe_public("room-1").await;
    let first = a.expect("pusher_internal:subscription_count").await;
    assert_eq!(data_of(&first)["subscription_count"], 1);
    let mut b = nodes.node(1).client().await;
    b.subscribe_public("room-1").await;
    // Both sockets hear the cluster-wide count of 2.
    for client in [&mut a, &mut b] {
        let count = client.expect("pusher_internal:subscription_count").await;
        assert_eq!(data_of(&count)["subscription_count"], 2);
    }
    let mut c = nodes.node(1).client().await;
    c.subscribe_signed("presence-x", Some(&presence_data("u9"))).await;
    for i in [0, 1] {
        let api = nodes.node(i).api();
        let (_, text) = api.get("/apps/1/channels", &[("info", "subscription_count")]).await;
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"channels": {"presence-x": {"subscription_count": 1}, "room-1": {"subscription_count": 2}}}),
            "node {i}"
        );
        let (_, text) = api.get("/apps/1/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")]).await;
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"channels": {"presence-x": {"user_count": 1}}})
        );
        let body = json!({"name": "e", "channels": ["room-1"], "data": "1", "info": "subscription_count"});
        let (_, text) = api.post("/apps/1/events", &body).await;
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"channels": {"room-1": {"subscription_count": 2}}})
        );
    }
    nodes.stop().await;
}

on_both!(terminate_connections_and_user_messages_reach_every_node);
async fn terminate_connections_and_user_messages_reach_every_node(kind: Kind) {
    let Some(nodes) = Nodes::start(kind, 2).await else { return };
    let mut far = nodes.node(1).client().await;
    far.signin(r#"{"id":"target"}"#).await;
    far.subscribe_public("#server-to-user-target").await;
    let api = nodes.node(0).api();
    let (status, _) = api.trigger("#server-to-user-target", "note", "hi").await;
    assert_eq!(status, 200);
    assert_eq!(far.expect("note").await["data"], "hi");
    let (status, _) = api.post("/apps/1/users/target/terminate_connections", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(far.expect_close().await, Some(4009));
    nodes.stop().await;
}

on_both!(a_cache_channels_last_event_is_cluster_wide);
async fn a_cache_channels_last_event_is_cluster_wide(kind: Kind) {
    let Some(nodes) = Nodes::start(kind, 2).await else { return };
    let mut early = nodes.node(0).client().await;
    early.subscribe_public("cache-price").await;
    early.expect("pusher:cache_miss").await;
    let (status, _) = nodes.node(0).api().trigger("cache-price", "tick", "42").await;
    assert_eq!(status, 200);
    assert_eq!(early.expect("tick").await["data"], "42");
    // A node whose sockets never saw the event still replays it and reports it.
    let mut late = nodes.node(1).client().await;
    late.subscribe_public("cache-price").await;
    assert_eq!(late.expect("tick").await["data"], "42");
    let (_, text) = nodes.node(1).api().get("/apps/1/channels/cache-price", &[("info", "cache")]).await;
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["cache"]["data"], "42", "{reply}");
    nodes.stop().await;
}

on_both!(webhooks_fire_once_per_cluster_from_the_node_that_made_the_change);
async fn webhooks_fire_once_per_cluster_from_the_node_that_made_the_change(kind: Kind) {
    let mut hook = crate::webhook::Receiver::start().await;
    let url = hook.url();
    let make = move || crate::webhook::config(std::slice::from_ref(&url));
    let prefix = prefix();
    let redis = match kind {
        Kind::Local => None,
        Kind::Redis => match RedisServer::start() {
            Some(redis) => Some(redis),
            None => return,
        },
    };
    let mut servers = Vec::new();
    for _ in 0..2 {
        let mut config = make();
        if let Some(redis) = &redis {
            config.redis_url = Some(redis.url());
            config.redis_prefix.clone_from(&prefix);
        }
        servers.push(TestServer::with(config).await);
        if redis.is_none() {
            break;
        }
    }
    let node = |i: usize| &servers[i % servers.len()];
    let room = "presence-w";
    let mut u1_a = node(0).client().await;
    u1_a.subscribe_signed(room, Some(&presence_data("u1"))).await;
    let mut u1_b = node(1).client().await;
    u1_b.subscribe_signed(room, Some(&presence_data("u1"))).await;
    let mut u2 = node(1).client().await;
    u2.subscribe_signed(room, Some(&presence_data("u2"))).await;
    for client in [&mut u1_a, &mut u1_b, &mut u2] {
        client.send(json!({"event": "pusher:unsubscribe", "data": {"channel": room}})).await;
    }
    let until = Instant::now() + WAIT;
    loop {
        let (_, text) = node(0).api().get("/apps/1/channels/presence-w", &[]).await;
        if serde_json::from_str::<Value>(&text).unwrap()["occupied"] == false {
            break;
        }
        assert!(Instant::now() < until, "still occupied: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected = [
        "channel_occupied presence-w",
        "channel_vacated presence-w",
        "member_added presence-w u1",
        "member_added presence-w u2",
        "member_removed presence-w u1",
        "member_removed presence-w u2",
    ];
    let line = |event: &Value| {
        format!(
            "{} {}{}",
            event["name"].as_str().unwrap(),
            event["channel"].as_str().unwrap(),
            event["user_id"].as_str().map(|u| format!(" {u}")).unwrap_or_default()
        )
    };
    let mut seen = Vec::new();
    while !expected.iter().all(|e| seen.iter().any(|s: &String| s == e)) {
        seen.push(line(&hook.next_event().await));
    }
    // Then a marker: had any node sent one of those twice, it would come before the marker's
    // vacated webhook (same leave delay, started later).
    let mut marker = node(1).client().await;
    marker.subscribe_public("marker").await;
    marker.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "marker"}})).await;
    loop {
        let event = line(&hook.next_event().await);
        if event == "channel_vacated marker" {
            break;
        }
        seen.push(event);
    }
    seen.sort();
    let mut all = expected.to_vec();
    all.insert(0, "channel_occupied marker");
    assert_eq!(seen, all, "each webhook once");
    for server in servers {
        server.stop().await;
    }
}

// ---- Redis only -------------------------------------------------------------------------

/// The built binary as a node of its own, so that it can be killed with SIGKILL.
struct NodeProcess {
    child: Child,
    addr: String,
}

impl NodeProcess {
    fn spawn(url: &str, prefix: &str) -> NodeProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pusher-local"));
        for (key, _) in std::env::vars() {
            if key.starts_with("PUSHER_") || key == "REDIS_URL" {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .args(["--no-config", "--port", "0", "--color", "never", "--redis-url", url, "--redis-prefix", prefix])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pusher-local");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps reading so the node never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("the node prints its address");
        NodeProcess { child, addr }
    }

    async fn client(&self) -> Client {
        Client::connect(&format!("ws://{}/app/{KEY}?protocol=7", self.addr)).await
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_leaves_no_ghost_member_within_ten_seconds() {
    let Some(redis) = RedisServer::start() else { return };
    let prefix = prefix();
    let survivor = TestServer::with(redis_config(&redis.url(), &prefix)).await;
    let mut doomed = NodeProcess::spawn(&redis.url(), &prefix);
    let mut watcher = survivor.client().await;
    watcher.subscribe_signed("presence-team", Some(&presence_data("stays"))).await;
    let mut ghost = doomed.client().await;
    let succeeded = ghost.subscribe_signed("presence-team", Some(&presence_data("ghost"))).await;
    assert_eq!(succeeded["presence"]["count"], 2);
    let mut doomed_public = doomed.client().await;
    doomed_public.subscribe_public("lobby").await;
    assert_eq!(data_of(&watcher.expect("pusher_internal:member_added").await)["user_id"], "ghost");

    doomed.child.kill().unwrap(); // SIGKILL: no goodbye
    doomed.child.wait().unwrap();
    let killed = Instant::now();
    let frame = until_event(&mut watcher, "pusher_internal:member_removed", Duration::from_secs(10)).await;
    assert_eq!(data_of(&frame)["user_id"], "ghost");
    eprintln!("member_removed {:?} after SIGKILL", killed.elapsed());
    let api = survivor.api();
    let (_, text) = api.get("/apps/1/channels/presence-team/users", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"users": [{"id": "stays"}]}));
    let (_, text) = api.get("/apps/1/channels", &[("info", "subscription_count")]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"channels": {"presence-team": {"subscription_count": 1}}}),
        "the dead node's subscriptions stop counting"
    );
    watcher.assert_alive().await;
    survivor.stop().await;
}

/// Reads `client` (short, cancel-safe reads) until `event` comes, for at most `within`.
async fn until_event(client: &mut Client, event: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        assert!(Instant::now() < until, "no {event} within {within:?}");
        match tokio::time::timeout(Duration::from_millis(250), client.next()).await {
            Ok(Next::Frame(frame)) if frame["event"] == event => return frame,
            Ok(Next::Frame(_)) | Err(_) => continue,
            Ok(Next::Closed(..)) => panic!("closed while waiting for {event}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stalled_past_its_heartbeat_is_removed_and_its_members_come_back_when_it_wakes() {
    let Some(redis) = RedisServer::start() else { return };
    let prefix = prefix();
    let survivor = TestServer::with(redis_config(&redis.url(), &prefix)).await;
    let sleepy = NodeProcess::spawn(&redis.url(), &prefix);
    let mut watcher = survivor.client().await;
    watcher.subscribe_signed("presence-nap", Some(&presence_data("stays"))).await;
    let mut napper = sleepy.client().await;
    napper.subscribe_signed("presence-nap", Some(&presence_data("napper"))).await;
    assert_eq!(data_of(&watcher.expect("pusher_internal:member_added").await)["user_id"], "napper");

    let signal = |sig: &str| {
        let pid = sleepy.child.id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    };
    signal("-STOP"); // frozen: no heartbeat, sockets still open
    let removed = until_event(&mut watcher, "pusher_internal:member_removed", Duration::from_secs(10)).await;
    assert_eq!(data_of(&removed)["user_id"], "napper");
    signal("-CONT");
    let back = until_event(&mut watcher, "pusher_internal:member_added", Duration::from_secs(10)).await;
    assert_eq!(data_of(&back)["user_id"], "napper");
    let (_, text) = survivor.api().get("/apps/1/channels/presence-nap/users", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"users": [{"id": "napper"}, {"id": "stays"}]}));
    survivor.stop().await;
}

/// Triggers `event` on `from` until `client` receives it (Redis may still be reconnecting).
async fn until_delivered(from: &TestServer, client: &mut Client, channel: &str, deadline: Duration) {
    let until = Instant::now() + deadline;
    loop {
        from.api().trigger(channel, "probe", "p").await;
        let got = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
        if let Ok(Next::Frame(frame)) = got {
            if frame["event"] == "probe" {
                return;
            }
        }
        assert!(Instant::now() < until, "no cross-node delivery within {deadline:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crashing_keeps_local_delivery_and_the_cluster_comes_back_whole() {
    let Some(mut nodes) = Nodes::start(Kind::Redis, 2).await else { return };
    // A third node whose terminal output we read.
    let log = Captured::default();
    let watched =
        TestServer::with_printer(redis_config(&nodes.redis.as_ref().unwrap().url(), "watched"), log.printer()).await;
    // Its start-up (connecting to Redis) runs in a task of its own: let it finish before the kill.
    watched.ready().await;
    let mut near = nodes.node(0).client().await;
    let mut far = nodes.node(1).client().await;
    near.subscribe_public("news").await;
    far.subscribe_public("news").await;
    near.subscribe_signed("presence-p", Some(&presence_data("near"))).await;
    far.subscribe_signed("presence-p", Some(&presence_data("far"))).await;
    near.expect("pusher_internal:member_added").await;

    let mut redis = nodes.redis.take().expect("a Redis case");
    redis.kill();
    log.until("cross-node delivery is DOWN", Duration::from_secs(10)).await;
    let (status, text) = watched.api().get("/pusher-local/health", &[]).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["status"], "redis_down");
    // Local subscribers keep being served.
    let (status, _) = nodes.node(0).api().trigger("news", "local", "1").await;
    assert_eq!(status, 200);
    assert_eq!(near.expect("local").await["data"], "1");

    redis.restart(); // empty: every node must write its state again
    log.until("cross-node delivery restored", Duration::from_secs(15)).await;
    assert_eq!(watched.api().get("/pusher-local/health", &[]).await.0, 200);
    until_delivered(nodes.node(0), &mut far, "news", Duration::from_secs(15)).await;
    until_delivered(nodes.node(1), &mut near, "news", Duration::from_secs(15)).await;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = nodes.node(1).api().get("/apps/1/channels/presence-p/users", &[]).await;
        if serde_json::from_str::<Value>(&text).unwrap() == json!({"users": [{"id": "far"}, {"id": "near"}]}) {
            break;
        }
        assert!(Instant::now() < until, "presence not re-established: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watched.stop().await;
    nodes.stop().await;
    drop(redis);
}

/// A control-API call to `server` (the fault endpoints).
async fn control(server: &TestServer, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/{path}", server.api_addr);
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = tokio::time::timeout(Duration::from_secs(5), request.send()).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_fault_plays_dead_until_cleared_and_the_cluster_takes_it_back() {
    let Some(nodes) = Nodes::start(Kind::Redis, 2).await else { return };
    let (alive, doomed) = (&nodes.servers[0], &nodes.servers[1]);
    let mut watcher = alive.client().await;
    watcher.subscribe_signed("presence-fate", Some(&presence_data("watcher"))).await;
    let mut victim = doomed.client().await;
    victim.subscribe_signed("presence-fate", Some(&presence_data("victim"))).await;
    assert_eq!(data_of(&watcher.expect("pusher_internal:member_added").await)["user_id"], "victim");

    let (status, fault) = control(doomed, reqwest::Method::POST, "faults", Some(json!({ "kind": "node_down" }))).await;
    assert_eq!(status, 201, "{fault}");
    assert_eq!(victim.expect_close().await, Some(4200));
    let (status, health) = control(doomed, reqwest::Method::GET, "health", None).await;
    assert_eq!((status, health["status"].as_str()), (503, Some("node_down")));
    // A dead node takes no one in: pusher-js backs off on 4100 and comes back later.
    let (ws, _) = tokio_tungstenite::connect_async(doomed.ws_url(KEY)).await.unwrap();
    let mut refused = Client { ws, socket_id: String::new() };
    assert_eq!(refused.expect_error().await["code"], 4100);
    // The other node finds out the way it would for a real death: the heartbeat stops.
    let removed = until_event(&mut watcher, "pusher_internal:member_removed", Duration::from_secs(15)).await;
    assert_eq!(data_of(&removed)["user_id"], "victim");

    let (status, _) = control(doomed, reqwest::Method::DELETE, "faults", None).await;
    assert_eq!(status, 200);
    let (status, health) = control(doomed, reqwest::Method::GET, "health", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("serving")));
    let mut back = doomed.client().await;
    back.subscribe_public("after-death").await;
    until_delivered(alive, &mut back, "after-death", Duration::from_secs(15)).await;
    // No ghost: the cluster's roster is the watcher alone.
    let (_, text) = alive.api().get("/apps/1/channels/presence-fate/users", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"users": [{"id": "watcher"}]}));
}

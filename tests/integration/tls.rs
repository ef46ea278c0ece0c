//! TLS on the one port: wss:// and https:// beside ws:// and http://, the generated certificate,
//! `--tls-cert`/`--tls-key`, TLS-only apps (4000 / 403), and a client that does not trust us.

use serde_json::json;

use crate::support::{self, data_of, Captured, Client, TestServer, KEY, WAIT};

/// A CA other than the test servers' one, in a temporary folder, with the server certificate
/// it signed for localhost and 127.0.0.1 (`server.pem`, `server-key.pem`).
fn other_ca() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let settings = pusher_local::tls::Settings { dir: dir.path().to_owned(), ..Default::default() };
    pusher_local::tls::ServerTls::prepare(&settings, &[]).unwrap();
    dir
}

#[tokio::test]
async fn one_port_serves_ws_wss_http_and_https_alike() {
    let server = TestServer::start().await;
    let mut secure = server.tls_client().await;
    let mut plain = server.client().await;
    secure.subscribe_public("ticker").await;
    plain.subscribe_public("ticker").await;

    let (status, body) = server.api_tls().trigger("ticker", "price", "{\"p\":1}").await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let (status, _) = server.api().trigger("ticker", "price", "{\"p\":2}").await;
    assert_eq!(status, 200);
    for client in [&mut secure, &mut plain] {
        assert_eq!(client.expect("price").await["data"], "{\"p\":1}");
        assert_eq!(client.expect("price").await["data"], "{\"p\":2}");
    }
    let (status, body) = server.api_tls().get("/apps/1/channels", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), json!({"channels": {"ticker": {}}}));

    // Client events cross from a TLS socket to a plain one.
    let mut a = server.tls_client().await;
    let mut b = server.client().await;
    let auth = support::channel_auth(&a.socket_id, "private-room", None);
    a.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-room", "auth": auth}})).await;
    a.expect("pusher_internal:subscription_succeeded").await;
    b.subscribe_signed("private-room", None).await;
    a.send(json!({"event": "client-typing", "channel": "private-room", "data": {"who": "a"}})).await;
    assert_eq!(data_of(&b.expect("client-typing").await), json!({"who": "a"}));
    server.stop().await;
}

#[tokio::test]
async fn tls_only_apps_refuse_plain_connections_with_4000_and_plain_api_calls_with_403() {
    let mut config = support::config();
    config.apps[0].tls_only = true;
    let server = TestServer::with(config).await;

    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url(KEY)).await.unwrap();
    let mut plain = Client { ws, socket_id: String::new() };
    let error = plain.expect_error().await;
    assert_eq!(error["code"], 4000, "{error}");
    assert_eq!(error["message"], "Application only accepts SSL connections, reconnect using wss://");
    assert_eq!(plain.expect_close().await, Some(4000));

    let (status, body) = server.api().trigger("c", "e", "{}").await;
    assert_eq!(status, 403);
    assert!(body.contains("https"), "{body}");

    let mut secure = server.tls_client().await;
    secure.subscribe_public("c").await;
    assert_eq!(server.api_tls().trigger("c", "e", "{}").await.0, 200);
    secure.expect("e").await;
    server.stop().await;
}

#[tokio::test]
async fn a_user_certificate_is_served_instead_of_the_generated_one() {
    // A stand-in for mkcert: another CA signs the files.
    let other = other_ca();
    let mut config = support::config();
    config.tls.cert = Some(other.path().join("server.pem"));
    config.tls.key = Some(other.path().join("server-key.pem"));
    let server = TestServer::with(config).await;

    let theirs = pusher_local::tls::ClientTrust { tls_dir: Some(other.path().to_owned()), ..Default::default() }
        .config()
        .unwrap();
    let mut client = Client::connect_tls(&server.wss_url(KEY), theirs).await;
    client.subscribe_public("c").await;

    // The test servers' own CA did not sign this certificate: a client trusting only it fails.
    let connector = tokio_tungstenite::Connector::Rustls(support::trust());
    let refused = tokio_tungstenite::connect_async_tls_with_config(server.wss_url(KEY), None, false, Some(connector));
    let error = tokio::time::timeout(WAIT, refused).await.unwrap().unwrap_err();
    let why = pusher_local::tls::client::explain(&error).unwrap_or_else(|| error.to_string());
    assert!(why.contains("not signed by a CA this machine trusts"), "{why}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_explained_in_the_log() {
    let captured = Captured::default();
    let server = TestServer::with_printer(support::config(), captured.printer()).await;
    let untrusting = pusher_local::tls::ClientTrust {
        tls_dir: Some(tempfile::tempdir().unwrap().path().to_owned()),
        ..Default::default()
    }
    .config()
    .unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(untrusting);
    let attempt = tokio_tungstenite::connect_async_tls_with_config(server.wss_url(KEY), None, false, Some(connector));
    assert!(tokio::time::timeout(WAIT, attempt).await.unwrap().is_err());
    captured.until("the client does not trust pusher-local's certificate", WAIT).await;
    assert!(captured.text().contains("pusher-local tls"), "{}", captured.text());

    // The server goes on serving, plain and TLS.
    let mut client = server.tls_client().await;
    client.assert_alive().await;
    let mut plain = server.client().await;
    plain.assert_alive().await;
    server.stop().await;
}

#[tokio::test]
async fn a_tls_socket_that_stays_silent_does_not_hold_up_shutdown() {
    let server = TestServer::start().await;
    let mut client = server.tls_client().await;
    client.subscribe_public("c").await;
    let idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    server.stop().await;
    assert_eq!(client.expect_close().await, Some(1001));
    drop(idle);
}

#[tokio::test]
async fn capture_over_wss_and_replay_over_https_make_the_same_events() {
    use pusher_local::recorder::{capture, remote, replay};
    let source = TestServer::start().await;
    let trust = pusher_local::tls::ClientTrust { tls_dir: Some(support::tls_dir()), ..Default::default() };
    // `https://` works for capture as for replay: the same URL forms.
    let url = remote::resolve(Some(&format!("https://{}", source.addr)), None, "", remote::Side::WebSocket).unwrap();
    assert!(url.starts_with("wss://"), "{url}");
    let options = capture::Options {
        url,
        key: KEY.into(),
        secret: Some(support::SECRET.into()),
        channels: vec!["ticker".into()],
        user_id: "capture".into(),
        trust: trust.clone(),
    };
    let (notices_tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        capture::run(&options, async { stop_rx.await.unwrap_or(()) }, move |n| notices_tx.send(n).unwrap()).await
    });
    loop {
        match tokio::time::timeout(WAIT, notices.recv()).await.expect("subscribed in time").unwrap() {
            capture::Notice::Subscribed(_) => break,
            capture::Notice::Connected(_) => {}
            other => panic!("{other:?}"),
        }
    }
    for p in 1..=3 {
        assert_eq!(source.api_tls().trigger("ticker", "price", &format!("{{\"p\":{p}}}")).await.0, 200);
        assert!(matches!(
            tokio::time::timeout(WAIT, notices.recv()).await.unwrap().unwrap(),
            capture::Notice::Event { .. }
        ));
    }
    stop_tx.send(()).unwrap();
    let fixture = task.await.unwrap().unwrap();
    assert_eq!(fixture.events.len(), 3);

    let target = TestServer::start().await;
    let mut watcher = target.tls_client().await;
    watcher.subscribe_public("ticker").await;
    let base = remote::resolve(Some(&format!("wss://{}", target.api_addr)), None, "", remote::Side::Api).unwrap();
    let publisher = replay::HttpPublisher::new(&base, "1", KEY, support::SECRET, &trust).unwrap();
    let plan = replay::Plan { speed: replay::Speed::Max, ..Default::default() };
    let outcome = replay::run(&fixture, &plan, &publisher, &Default::default(), |_| {}).await.unwrap();
    assert_eq!(outcome.sent, 3);
    for p in 1..=3 {
        assert_eq!(watcher.expect("price").await["data"], format!("{{\"p\":{p}}}"));
    }
    source.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_error_naming_the_host() {
    use pusher_local::recorder::{capture, replay};
    // Trusts nothing but the system's roots: the test CA is not among them.
    let untrusting = pusher_local::tls::ClientTrust::default();
    let server = TestServer::start().await;
    let options = capture::Options {
        url: format!("wss://{}", server.addr),
        key: KEY.into(),
        secret: None,
        channels: vec!["c".into()],
        user_id: "u".into(),
        trust: untrusting.clone(),
    };
    let error = capture::run(&options, std::future::pending(), |_| {}).await.unwrap_err().to_string();
    assert!(
        error.contains(&server.addr.to_string()) && error.contains("not signed by a CA this machine trusts"),
        "{error}"
    );
    assert!(error.contains("--ca-file"), "{error}");

    let publisher =
        replay::HttpPublisher::new(&format!("https://{}", server.api_addr), "1", KEY, support::SECRET, &untrusting)
            .unwrap();
    let fixture = pusher_local::recorder::Fixture {
        name: None,
        description: None,
        events: vec![pusher_local::recorder::FixtureEvent::new(std::time::Duration::ZERO, "c", "e", "{}")],
    };
    let error = replay::run(&fixture, &replay::Plan::default(), &publisher, &Default::default(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&server.api_addr.to_string()) && error.contains("not signed by a CA"), "{error}");

    // --insecure connects anyway.
    let insecure =
        capture::Options { trust: pusher_local::tls::ClientTrust { insecure: true, ..Default::default() }, ..options };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        capture::run(&insecure, async { stop_rx.await.unwrap_or(()) }, move |n| {
            let _ = seen_tx.send(n);
        })
        .await
    });
    assert!(matches!(tokio::time::timeout(WAIT, seen.recv()).await.unwrap(), Some(capture::Notice::Connected(_))));
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    server.stop().await;
}

/// An https webhook endpoint: TLS with the certificate that `dir`'s CA signs, answering 200 to
/// every POST and handing over each body.
async fn https_receiver(dir: &std::path::Path) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let settings = pusher_local::tls::Settings { dir: dir.to_owned(), ..Default::default() };
    let acceptor = pusher_local::tls::ServerTls::prepare(&settings, &[]).unwrap().acceptor().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}/pusher/webhook", listener.local_addr().unwrap().port());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let mut stream = BufReader::new(tls);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                stream.read_exact(&mut body).await.unwrap();
                let _ = tx.send(String::from_utf8(body).unwrap());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn webhooks_go_to_https_endpoints_and_an_untrusted_one_fails_with_its_reason() {
    let (trusted, mut bodies) = https_receiver(&support::tls_dir()).await;
    let stranger = tempfile::tempdir().unwrap();
    let (untrusted, _never) = https_receiver(stranger.path()).await;
    let mut config = support::config();
    config.apps[0].webhooks =
        vec![pusher_local::webhook::Target::new(&trusted), pusher_local::webhook::Target::new(&untrusted)];
    let server = TestServer::with(config).await;
    let mut client = server.client().await;
    client.subscribe_public("room").await;

    let body: serde_json::Value =
        serde_json::from_str(&tokio::time::timeout(WAIT, bodies.recv()).await.unwrap().unwrap()).unwrap();
    assert_eq!(body["events"][0]["name"], "channel_occupied");

    let outbox = async {
        loop {
            let url = format!("http://{}/pusher-local/webhooks/1", server.api_addr);
            let record: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let failed =
                record["deliveries"].as_array().unwrap().iter().find(|d| d["url"] == untrusted.as_str()).cloned();
            if let Some(d) = failed.filter(|d| d["state"] == "failed") {
                return d;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let delivery = tokio::time::timeout(WAIT, outbox).await.expect("the untrusted delivery fails at once");
    let error = delivery["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("TLS") && error.contains("not signed by a CA"), "{delivery}");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1, "a certificate problem is not retried");
    server.stop().await;
}

#[tokio::test]
async fn two_nodes_on_a_tls_redis_act_as_one_and_an_untrusted_redis_is_refused_with_its_reason() {
    // Redis's certificate comes from a CA of the test's own, passed as --ca-file.
    let redis_ca = other_ca();
    let Some(redis) = support::redis::RedisServer::start_tls(
        &redis_ca.path().join("server.pem"),
        &redis_ca.path().join("server-key.pem"),
    ) else {
        return;
    };
    assert!(redis.url().starts_with("rediss://"));
    let node = |prefix: &str| {
        let mut config = support::config();
        config.redis_url = Some(redis.url());
        config.redis_prefix = prefix.to_owned();
        config.tls.ca_files = vec![redis_ca.path().join("ca.pem")];
        config
    };
    let prefix = format!("tls-{:016x}", rand::random::<u64>());
    let a = TestServer::with(node(&prefix)).await;
    let b = TestServer::with(node(&prefix)).await;
    let mut on_a = a.tls_client().await;
    on_a.subscribe_public("cluster").await;
    let mut on_b = b.client().await;
    on_b.subscribe_public("cluster").await;
    assert_eq!(b.api_tls().trigger("cluster", "hello", "{\"from\":\"b\"}").await.0, 200);
    assert_eq!(on_a.expect("hello").await["data"], "{\"from\":\"b\"}");
    assert_eq!(on_b.expect("hello").await["data"], "{\"from\":\"b\"}");
    let (_, body) = a.api().get("/apps/1/channels/cluster", &[("info", "subscription_count")]).await;
    assert!(body.contains("\"subscription_count\":2"), "{body}");

    // Without the CA the node does not start, and says why.
    let mut untrusting = node(&prefix);
    untrusting.tls.ca_files.clear();
    let listeners = pusher_local::Listeners::bind(&untrusting.listen).await.unwrap();
    let printer = pusher_local::printer::Printer::silent();
    let started = pusher_local::run(listeners, untrusting, printer, pusher_local::Shutdown::new());
    let error = tokio::time::timeout(std::time::Duration::from_secs(15), started).await.unwrap().unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(error));
    assert!(text.contains("rediss://127.0.0.1") && text.contains("UnknownIssuer"), "{text}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_http_fallback_and_the_control_api_work_over_https() {
    let server = TestServer::start().await;
    let https = reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&support::trust()))
        .build()
        .unwrap();
    // pusher-js's xhr polling transport over https: the open line, then connection_established.
    let url = format!("https://{}/pusher/app/{KEY}/123/tlspoll", server.addr);
    let poll = || async {
        let response = https.post(format!("{url}/xhr?protocol=7")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::timeout(WAIT, response.text()).await.unwrap().unwrap()
    };
    assert_eq!(poll().await, "o\n");
    let second = poll().await;
    assert!(second.starts_with("a[") && second.contains("pusher:connection_established"), "{second}");

    let control = https.get(format!("https://{}/pusher-local/webhooks", server.api_addr)).send().await.unwrap();
    assert_eq!(control.status(), 200);
    let body: serde_json::Value = control.json().await.unwrap();
    assert!(body["webhooks"].is_array(), "{body}");
    server.stop().await;
}

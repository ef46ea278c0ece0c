//! TLS on the one port: wss:// and https:// beside ws:// and http://, the generated certificate,
//! `--tls-cert`/`--tls-key`, TLS-only apps (4000 / 403), and a client that does not trust us.

use serde_json::json;

use crate::support::{self, data_of, Captured, Client, TestServer, KEY, WAIT};

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
    // A stand-in for mkcert: another CA (made in a temporary folder) signs the files.
    let other = tempfile::tempdir().unwrap();
    let settings = pusher_local::tls::Settings { dir: other.path().to_owned(), ..Default::default() };
    pusher_local::tls::ServerTls::prepare(&settings, &[]).unwrap();
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
    assert_eq!(client.expect_close().await, Some(4200));
    drop(idle);
}

//! The README shows what the binary prints: its banner and log-line examples are rendered here
//! from the same lines, by the same code, and compared (times aside), so the two cannot drift.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::TimeZone;

use pusher_local::apps::AppId;
use pusher_local::auth::diagnose::{Cause, Diagnosis, Subject};
use pusher_local::banner;
use pusher_local::printer::{text, Line, RecorderLine, TextOptions};
use pusher_local::protocol::{ChannelName, Frame, SocketId};
use pusher_local::tls::authority::{Name, Opened};
use pusher_local::tls::server::Identity;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The README's lines that start with a time, with the time cut off, in order.
fn readme_log_lines(readme: &str) -> Vec<String> {
    let is_time =
        |l: &str| l.len() > 13 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':' && l.as_bytes()[8] == b'.';
    readme.lines().filter(|l| is_time(l)).map(|l| l[12..].to_owned()).collect()
}

fn render(line: &Line) -> Vec<String> {
    let opts = TextOptions { color: false, full: false, width: None, show_app: false };
    let at = chrono::Local.with_ymd_and_hms(2026, 12, 3, 20, 7, 41).unwrap();
    let text = text::render(line, &line.view(), &opts, at);
    let mut lines = text.lines().map(str::to_owned);
    let first = lines.next().unwrap_or_default()[12..].to_owned();
    std::iter::once(first).chain(lines).collect()
}

#[test]
fn the_banner_in_the_readme_is_the_banner_the_binary_prints() {
    let config = pusher_local::Config::default();
    let addr: SocketAddr = "127.0.0.1:6001".parse().unwrap();
    let identity = Identity::Generated {
        ca: "/home/me/.local/share/pusher-local/ca.pem".into(),
        opened: Opened::Existing,
        names: ["localhost", "127.0.0.1", "::1"].iter().map(|n| Name::parse(n).unwrap()).collect(),
    };
    let banner = banner::render(&config, addr, addr, Some(&identity), false);
    let readme = readme();
    assert!(
        readme.contains(&format!("```text\n{banner}\n```")),
        "the README's banner (under \"What it prints\") differs from the binary's:\n{banner}"
    );
}

#[test]
fn the_log_lines_in_the_readme_are_the_lines_the_binary_prints() {
    let socket = SocketId::new(703699, 378680);
    let other = SocketId::new(503682, 902794);
    let app = || AppId::new("1");
    let channel = ChannelName::parse("my-channel", 164).unwrap();
    let lines = [
        Line::Connected { socket, app: app(), remote: Some("127.0.0.1:54146".parse().unwrap()) },
        Line::Api { method: "POST".into(), path: "/apps/1/events".into(), status: 200, elapsed: Duration::from_micros(600), reason: None },
        Line::Disconnected { socket, app: app(), code: Some(1000), reason: "by client".into() },
        Line::FrameIn { socket: other, app: app(), frame: Frame::from(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}"#.to_owned()) },
        Line::FrameOut {
            socket: other,
            app: app(),
            frame: Frame::from(r#"{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}"#.to_owned()),
        },
        Line::Published {
            app: app(),
            channel: channel.clone(),
            event: "my-event".into(),
            data: r#"{"message":"hello"}"#.into(),
            source: pusher_local::event::Source::Api,
            delivered: 1,
            hint: None,
        },
        Line::FrameOut {
            socket: other,
            app: app(),
            frame: Frame::from(r#"{"event":"my-event","channel":"my-channel","data":"{\"message\":\"hello\"}"}"#.to_owned()),
        },
        Line::Signature(Box::new(Diagnosis {
            subject: Subject::Request { method: "POST".into(), path: "/apps/1/events".into() },
            app: Some("1".into()),
            expected_string: "POST\n/apps/1/events\nauth_key=app-key&auth_timestamp=1795377597&auth_version=1.0&body_md5=dcd2e1811c3316e32d926c1d72117330".into(),
            received: "7d02be4db7ada9d9027287d767629d4d596aa41d0fc568ff7299e9d0d1e7440e".into(),
            expected: Some("e88f49df062254cd16a0b8636931d47ed4905869d5f816c402c813b843f6b084".into()),
            body_md5: Some("dcd2e1811c3316e32d926c1d72117330".into()),
            skew_secs: Some(0),
            cause: Cause::WrongSecret,
        })),
        Line::Api {
            method: "POST".into(),
            path: "/apps/1/events".into(),
            status: 401,
            elapsed: Duration::from_micros(1000),
            reason: Some("Invalid signature: you should have sent HmacSHA256Hex(…)".into()),
        },
        Line::Recorder(RecorderLine::Recording { name: "demo".into(), db: "/home/me/app/pusher-local.db".into() }),
        Line::Recorder(RecorderLine::FixtureLoaded {
            name: "stock_ticker".into(),
            file: "/home/me/app/fixtures/stock_ticker.json".into(),
            events: 30,
        }),
        Line::Recorder(RecorderLine::FixtureInvalid {
            name: "demo".into(),
            error: "/home/me/app/fixtures/demo.json:7:41: expected `,` or `}`".into(),
            kept: true,
        }),
        Line::Recorder(RecorderLine::Saved { name: "demo".into(), events: 42 }),
        Line::Webhook {
            app: app(),
            channel: Some("my-channel".into()),
            label: "channel_occupied my-channel".into(),
            url: "http://127.0.0.1:8000/pusher/webhook".into(),
            result: "200".into(),
            ok: true,
            attempt: 1,
            elapsed: Duration::from_millis(3),
            next: String::new(),
        },
        Line::Webhook {
            app: app(),
            channel: Some("presence-room".into()),
            label: "member_removed presence-room user bob".into(),
            url: "http://127.0.0.1:8000/pusher/webhook".into(),
            result: "500".into(),
            ok: false,
            attempt: 1,
            elapsed: Duration::from_millis(2),
            next: ", retry in 1s".into(),
        },
    ];
    let rendered: Vec<String> = lines.iter().flat_map(render).collect();
    // The README's lines with a time, plus the indented lines of the diagnosis that follow one.
    let readme = readme();
    let mut shown = Vec::new();
    let mut after_time = false;
    for line in readme.lines() {
        let timed = readme_log_lines(line).pop();
        match timed {
            Some(rest) => {
                shown.push(rest);
                after_time = true;
            }
            None if after_time && line.starts_with("    ") => shown.push(line.to_owned()),
            None => after_time = false,
        }
    }
    for line in &rendered {
        assert!(
            shown.contains(line),
            "the binary prints\n{line}\nwhich the README does not show; it shows:\n{}",
            shown.join("\n")
        );
    }
}

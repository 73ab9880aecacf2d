//! The `icbridge` binary's subcommands, run as a user would.

use std::process::Output;

use serde_json::{json, Value};
use tokio::process::Command;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// Runs `icbridge ARGS` with only the given `ICB_*` variables, in a temporary directory.
pub async fn icbridge(args: &[&str], vars: &[(&str, String)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_icbridge"));
    command.args(args).env_clear().current_dir(dir.path());
    command.env(
        "ICB_DATABASE_URL",
        format!("sqlite://{}/cli.db", dir.path().display()),
    );
    for (key, value) in vars {
        command.env(format!("ICB_{key}"), value);
    }
    command.output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn link_prints_short_links() {
    let broker = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .and(header("authorization", "Bearer pat-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("ic-joseencrypt-short.json"), "application/json"),
        )
        .expect(1)
        .mount(&broker)
        .await;
    let output = icbridge(
        &["link", "--sub", "demo-room-1", "--ttl", "2h"],
        &[
            ("WEBEX_TOKEN", "pat-token".into()),
            ("IC_BASE_URL", broker.uri()),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains(&format!("host:    {SHORT_HOST_URL}")), "{out}");
    assert!(
        out.contains(&format!("guest:   {SHORT_GUEST_URL}")),
        "{out}"
    );
    assert!(out.contains("sub:     demo-room-1"), "{out}");
    let sent: Value = broker.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["jwt"]["sub"], "demo-room-1");
    assert_eq!(sent["provideShortUrls"], true);
    assert_eq!(sent["loginUrlForHost"], false);
    let exp = sent["jwt"]["exp"].as_i64().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 7190..=now + 7210).contains(&exp), "{exp}");
}

#[tokio::test]
async fn link_long_hc_json() {
    let broker = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("ic-joseencrypt-long.json"), "application/json"),
        )
        .mount(&broker)
        .await;
    let output = icbridge(
        &[
            "link",
            "--long",
            "--vertical",
            "hc",
            "--host-login",
            "--json",
        ],
        &[
            ("WEBEX_TOKEN", "pat-token".into()),
            ("IC_BASE_URL", broker.uri()),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let long = fixture_json("ic-joseencrypt-long.json");
    assert_eq!(
        printed["guestUrl"],
        format!(
            "https://instant.webex.com/hc/v1/talk?int=jose&v=1&data={}",
            long["guest"][0]["cipher"].as_str().unwrap()
        )
    );
    assert!(printed["hostUrl"]
        .as_str()
        .unwrap()
        .starts_with("https://instant.webex.com/hc/v1/login?int=jose&v=1&data="));
    let sent: Value = broker.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["provideShortUrls"], false);
    assert_eq!(sent["verticalType"], "hc");
    assert_eq!(sent["loginUrlForHost"], true);
    assert!(uuid::Uuid::parse_str(printed["sub"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn link_without_a_token_says_what_to_set() {
    let output = icbridge(&["link"], &[]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ICB_WEBEX_TOKEN"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn check_reports_each_check() {
    let webex = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/people/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bot-1", "emails": ["icbridge@webex.bot"], "displayName": "icbridge"
        })))
        .mount(&webex)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/rooms"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("webex-rooms.json"), "application/json"),
        )
        .mount(&webex)
        .await;
    let base = [
        ("WEBEX_TOKEN", "bot-token".to_string()),
        ("WEBEX_API_URL", format!("{}/v1", webex.uri())),
        ("CONNECT_WEBHOOK_TOKEN", "flow-token".to_string()),
    ];

    let mut vars = base.to_vec();
    vars.push(("EXPERT_ROOM_TITLE", "Video Experts".into()));
    let output = icbridge(&["check"], &vars).await;
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    assert!(
        out.contains("ok      webex token: icbridge (icbridge@webex.bot)"),
        "{out}"
    );
    assert!(out.contains("ok      expert target: RoomId"), "{out}");
    assert!(
        out.contains("ok      webhook auth: bearer token set"),
        "{out}"
    );
    assert!(out.contains("ok      database: reachable"), "{out}");

    let mut vars = base.to_vec();
    vars.push(("EXPERT_ROOM_TITLE", "Nobody".into()));
    let output = icbridge(&["check"], &vars).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        out.contains("failed  expert target: no group space titled \"Nobody\""),
        "{out}"
    );
    assert!(out.contains("\"Video Experts\""), "{out}");

    // Desks from a file: each desk's space is checked by its name.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("desks.toml");
    std::fs::write(
        &file,
        "[[desk]]\nname = \"pediatrics\"\nroom_title = \"Video Experts\"\ndefault = true\n\
         hours = [\"mon-sun 00:00-24:00\"]\n\
         [[desk]]\nname = \"mortgages\"\nroom_title = \"Nobody\"\n",
    )
    .unwrap();
    let output = icbridge(&["--config", file.to_str().unwrap(), "check"], &base).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("ok      desk pediatrics: RoomId"), "{out}");
    assert!(out.contains("; open now\n"), "{out}");
    assert!(
        out.contains("failed  desk mortgages: no group space titled \"Nobody\""),
        "{out}"
    );
}

#[tokio::test]
async fn check_reports_a_bad_token() {
    let webex = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/people/me"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "The request requires a valid access token set in the Authorization request header.",
            "trackingId": "T-401"
        })))
        .mount(&webex)
        .await;
    let output = icbridge(
        &["check"],
        &[
            ("WEBEX_TOKEN", "expired".into()),
            ("WEBEX_API_URL", format!("{}/v1", webex.uri())),
            ("EXPERT_ROOM_ID", "room".into()),
        ],
    )
    .await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        out.contains(
            "failed  webex token: Webex API: HTTP 401: The request requires a valid access token"
        ),
        "{out}"
    );
    assert!(out.contains("T-401"), "{out}");
    assert!(out.contains("failed  webhook auth"), "{out}");
    assert!(
        !out.contains("expired"),
        "the token itself is never printed: {out}"
    );
}

#[tokio::test]
async fn serve_refuses_to_start_unconfigured_and_names_the_variables() {
    let output = icbridge(&["serve"], &[("LISTEN", "127.0.0.1:0".into())]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    for variable in [
        "ICB_WEBEX_TOKEN",
        "ICB_CONNECT_WEBHOOK_SECRET",
        "ICB_CONNECT_WEBHOOK_TOKEN",
        "ICB_EXPERT_ROOM_ID",
    ] {
        assert!(err.contains(variable), "{variable} missing in: {err}");
    }
}

#[tokio::test]
async fn bad_configuration_is_reported_with_the_variable() {
    let output = icbridge(&["serve"], &[("LINK_TTL", "forever".into())]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("ICB_LINK_TTL: invalid duration"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("fresh.db");
    let output = icbridge(
        &["migrate"],
        &[("DATABASE_URL", format!("sqlite://{}", database.display()))],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(database.exists());
    // Twice is fine.
    let output = icbridge(
        &["migrate"],
        &[("DATABASE_URL", format!("sqlite://{}", database.display()))],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["serve", "--help"],
        &["link", "--help"],
        &["check", "--help"],
        &["migrate", "--help"],
    ] {
        let output = icbridge(sub, &[]).await;
        assert!(output.status.success(), "{sub:?}");
        assert!(stdout(&output).contains("Usage: icbridge"), "{sub:?}");
    }
}

//! icbridge's own links (with ICB_PUBLIC_URL): on to the meeting while it lasts, the ended
//! page after close, a new link or expiry; previews are not openings; the first opening is
//! posted once; unknown codes are limited per address.

use serde_json::Value;

use crate::desk::*;
use crate::helpers::*;
use crate::opt_out::{customer_texts, expert_replies, sms_app_with};

/// With a path: behind a proxy that serves icbridge under a prefix.
const PUBLIC: &str = "https://bridge.example.com/support";

async fn app_with_own_links(db: TestDb) -> TestApp {
    sms_app_with(db, &[("PUBLIC_URL", PUBLIC)], Vec::new()).await
}

/// A request to `/j/<code>` of `url`, as `agent` would send it, not following redirects.
async fn visit(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    agent: &str,
) -> reqwest::Response {
    let code = url.rsplit_once("/j/").unwrap().1;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .request(method, format!("{}/j/{code}", app.address))
        .header("User-Agent", agent)
        .send()
        .await
        .unwrap()
}

const BROWSER: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";

async fn openings(app: &TestApp) -> Vec<String> {
    bot_posts_after_notification(app)
        .await
        .iter()
        .filter_map(|p| p["markdown"].as_str())
        .filter(|m| m.contains("opened the link"))
        .map(str::to_string)
        .collect()
}

db_test! {
    async fn own_links_lead_to_the_meeting_while_it_lasts_and_previews_are_not_openings(db) {
        let app = app_with_own_links(db).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        let guest = answer["guestUrl"].as_str().unwrap().to_string();
        assert!(guest.starts_with(&format!("{PUBLIC}/j/")) && guest.len() == PUBLIC.len() + 3 + 22, "{guest}");
        assert_eq!(answer["reply"], format!("Join your video consultation: {guest}"));
        let notification = app.webex_posts().await[0]["markdown"].as_str().unwrap().to_string();
        assert!(!notification.contains("instant.webex.com") && notification.contains(&format!("{PUBLIC}/j/")), "{notification}");

        // Previews: HEAD, and a GET from WhatsApp's preview fetcher.
        for (method, agent) in [(reqwest::Method::HEAD, BROWSER), (reqwest::Method::GET, "WhatsApp/2.23.20.0 A")] {
            let preview = visit(&app, method.clone(), &guest, agent).await;
            assert_eq!(preview.status(), 200, "{method} {agent}");
            assert_eq!(preview.headers()["cache-control"], "no-store");
            if method == reqwest::Method::GET {
                let page = preview.text().await.unwrap();
                assert!(page.contains("<title>Video consultation</title>") && !page.contains("instant.webex.com"), "{page}");
            }
        }
        app.worker.run_once().await.unwrap();
        assert!(openings(&app).await.is_empty(), "a preview is not an opening");

        // The customer opens it (twice): on to the meeting, posted once.
        for _ in 0..2 {
            let opened = visit(&app, reqwest::Method::GET, &guest, BROWSER).await;
            assert_eq!(opened.status(), 302);
            assert_eq!(opened.headers()["location"], SHORT_GUEST_URL);
            assert_eq!(opened.headers()["cache-control"], "no-store");
            assert_eq!(opened.headers()["referrer-policy"], "no-referrer");
            app.worker.run_once().await.unwrap();
        }
        let posted = openings(&app).await;
        assert_eq!(posted.len(), 1, "{posted:?}");
        assert!(posted[0].starts_with("👀 The customer opened the link at "), "{posted:?}");
        assert!(app.metrics_page().await.contains("icbridge_link_opened_seconds_count 1"));
        // The expert's host link leads to the host's.
        let host = notification.split(&format!("{PUBLIC}/j/")).nth(1).unwrap()[..22].to_string();
        assert_eq!(app.own_link_target(&format!("{PUBLIC}/j/{host}")).await, Ok(SHORT_HOST_URL.to_string()));
        assert_eq!(openings(&app).await.len(), 1, "the host's opening is not the customer's");
    }
}

db_test! {
    async fn a_link_ends_with_a_new_link_the_conversations_close_or_its_expiry(db) {
        let app = app_with_own_links(db).await;
        let first = customer_texts(&app, "m-1", "Hello").await;
        let first_link = first["guestUrl"].as_str().unwrap().to_string();
        assert_eq!(app.own_link_target(&first_link).await, Ok(SHORT_GUEST_URL.to_string()));

        // `new link` (a little later): the old link has ended, the new one leads on.
        app.clock.advance(std::time::Duration::from_secs(5));
        expert_replies(&app, "e-1", "new link").await;
        app.worker.run_once().await.unwrap();
        assert_eq!(app.own_link_target(&first_link).await, Err(410));
        let ended = visit(&app, reqwest::Method::GET, &first_link, BROWSER).await.text().await.unwrap();
        assert!(ended.contains("This consultation link has ended") && ended.contains("send us a new message"), "{ended}");
        let second = customer_texts(&app, "m-2", "Thanks").await;
        let second_link = second["guestUrl"].as_str().unwrap().to_string();
        assert_ne!(second_link, first_link);
        assert_eq!(app.own_link_target(&second_link).await, Ok(SHORT_GUEST_URL.to_string()));

        // Closed: ended.
        let id = first["conversationId"].as_str().unwrap();
        assert_eq!(admin(&app, reqwest::Method::POST, &format!("/api/conversations/{id}/close")).await.status(), 200);
        assert_eq!(app.own_link_target(&second_link).await, Err(410));

        // Expired: ended.
        let third = customer_texts(&app, "m-3", "Me again").await;
        let third_link = third["guestUrl"].as_str().unwrap().to_string();
        assert_eq!(app.own_link_target(&third_link).await, Ok(SHORT_GUEST_URL.to_string()));
        app.clock.advance(std::time::Duration::from_secs(3601));
        assert_eq!(app.own_link_target(&third_link).await, Err(410));
    }
}

db_test! {
    async fn unknown_codes_get_the_ended_page_and_are_limited_per_address(db) {
        let app = app_with_own_links(db).await;
        let live = customer_texts(&app, "m-1", "Hello").await["guestUrl"].as_str().unwrap().to_string();
        for attempt in 0..20 {
            let code = format!("{PUBLIC}/j/{attempt:0>22}");
            let unknown = visit(&app, reqwest::Method::GET, &code, BROWSER).await;
            assert_eq!(unknown.status(), 404, "{attempt}");
            assert!(unknown.text().await.unwrap().contains("This consultation link has ended"));
        }
        // Past the limit, this address gets nothing for a minute, not even a live link.
        let refused = visit(&app, reqwest::Method::GET, &live, BROWSER).await;
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "60");
        app.clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(app.own_link_target(&live).await, Ok(SHORT_GUEST_URL.to_string()));
        let short: Value = serde_json::json!(visit(&app, reqwest::Method::GET, &format!("{PUBLIC}/j/short"), BROWSER).await.status().as_u16());
        assert_eq!(short, 404);
    }
}

/// The status of a visit to an unknown code, sent with these forwarding headers.
async fn unknown_code_with(app: &TestApp, headers: &[(&str, String)]) -> u16 {
    let mut request = app
        .http
        .get(format!("{}/j/{:0>22}", app.address, "unknown"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap().status().as_u16()
}

db_test! {
    async fn forwarding_headers_count_only_from_a_trusted_proxy(db) {
        // Without ICB_TRUSTED_PROXIES, made-up forwarding headers change nothing: the peer
        // is who asks, and it is refused past the limit.
        let app = app_with_own_links(db).await;
        for attempt in 0..25 {
            let made_up = [
                ("X-Forwarded-For", format!("198.51.100.{attempt}")),
                ("Forwarded", format!("for=203.0.113.{attempt}")),
            ];
            let status = unknown_code_with(&app, &made_up).await;
            assert_eq!(status, if attempt < 20 { 404 } else { 429 }, "{attempt}");
        }

        // Behind a trusted proxy (here: the test's own address, and 10.0.0.0/8 before it),
        // each client the proxies forward is counted on its own...
        let trusted = [("PUBLIC_URL", PUBLIC), ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")];
        let app = sms_app_with(db, &trusted, Vec::new()).await;
        for attempt in 0..25 {
            let forwarded = [("X-Forwarded-For", format!("198.51.100.{attempt}"))];
            assert_eq!(unknown_code_with(&app, &forwarded).await, 404, "{attempt}");
        }
        // ...and what a client writes itself, left of what the proxies added, is not believed.
        for attempt in 0..20 {
            let spoofed = [("X-Forwarded-For", format!("6.6.6.{attempt}, 203.0.113.7, 10.1.1.1"))];
            assert_eq!(unknown_code_with(&app, &spoofed).await, 404, "{attempt}");
        }
        let same_client = [("X-Forwarded-For", "203.0.113.7".to_string())];
        assert_eq!(unknown_code_with(&app, &same_client).await, 429);
        let another = [("X-Forwarded-For", "198.51.100.99".to_string())];
        assert_eq!(unknown_code_with(&app, &another).await, 404);
    }
}

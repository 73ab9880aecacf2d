//! Taking a conversation: one expert answers the customer; the others are told who has it.

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::desk::*;
use crate::helpers::*;

const SECOND_ID: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9leHBlcnQtMDAwMg";
const SECOND_EMAIL: &str = "second@example.com";

/// A desk app whose experts' space has a second expert too.
async fn two_expert_app(db: TestDb) -> TestApp {
    let app = desk_app(
        db,
        &[("REPLY_MODE", "connect"), ("ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/memberships"))
        .and(query_param("personId", SECOND_ID))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [{
            "id": "membership-2", "roomId": EXPERT_ROOM, "personId": SECOND_ID, "personEmail": SECOND_EMAIL
        }]})))
        .with_priority(1)
        .mount(&app.webex)
        .await;
    app
}

/// A thread reply by `person` (`EXPERT_ID` or `SECOND_ID`), recorded as Webex sends it.
async fn says(app: &TestApp, person: &str, id: &str, text: &str) {
    let email = if person == EXPERT_ID {
        "expert@example.com"
    } else {
        SECOND_EMAIL
    };
    Mock::given(method("GET"))
        .and(path(format!("/v1/messages/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "roomId": EXPERT_ROOM, "roomType": "group", "text": text, "parentId": thread_id(),
            "personId": person, "personEmail": email, "created": now_rfc3339(),
        })))
        .mount(&app.webex)
        .await;
    let mut event = fixture_json("webex-webhook-message-created.json");
    event["data"]["id"] = json!(id);
    event["data"]["personId"] = json!(person);
    event["data"]["personEmail"] = json!(email);
    event["actorId"] = json!(person);
    deliver_event(app, &event.to_string()).await;
}

/// The texts the customer got by WhatsApp after the guest link.
async fn customer_got(app: &TestApp) -> Vec<String> {
    whatsapp_after_the_link(app)
        .await
        .iter()
        .map(|wa| wa["text"]["body"].as_str().unwrap().to_string())
        .collect()
}

async fn thread_says(app: &TestApp) -> Vec<String> {
    bot_posts_after_notification(app)
        .await
        .iter()
        .map(|p| p["markdown"].as_str().unwrap().to_string())
        .collect()
}

async fn step(app: &TestApp) {
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
}

db_test! {
    async fn only_the_assignees_replies_reach_the_customer(db) {
        let app = two_expert_app(db).await;
        let answer = open_conversation(&app).await;
        let id = answer["conversationId"].as_str().unwrap();
        says(&app, EXPERT_ID, "m-1", "take").await;
        step(&app).await;
        says(&app, SECOND_ID, "m-2", "I can help too").await;
        step(&app).await;
        says(&app, EXPERT_ID, "m-3", "Hello, I am your advisor").await;
        step(&app).await;
        assert_eq!(customer_got(&app).await, vec!["Hello, I am your advisor"]);
        let thread = thread_says(&app).await;
        assert_eq!(thread.len(), 2, "{thread:#?}");
        assert!(thread[0].starts_with("✋ **Taken by expert@example.com**"), "{}", thread[0]);
        assert_eq!(
            thread[1],
            "Not sent to the customer: this conversation is taken by expert@example.com. Ask them to `release` it first."
        );
        // Shown where experts and operators look.
        let shown: Value = admin(&app, reqwest::Method::GET, &format!("/api/conversations/{id}")).await.json().await.unwrap();
        assert_eq!(shown["assignee"], "expert@example.com");
        says(&app, SECOND_ID, "m-4", "list").await;
        step(&app).await;
        assert!(thread_says(&app).await.last().unwrap().contains("taken by expert@example.com"));

        // The other expert cannot take it or release it; the assignee can release it.
        says(&app, SECOND_ID, "m-5", "take").await;
        step(&app).await;
        assert_eq!(thread_says(&app).await.last().unwrap(), "This conversation is taken by expert@example.com.");
        says(&app, SECOND_ID, "m-6", "release").await;
        step(&app).await;
        assert_eq!(thread_says(&app).await.last().unwrap(), "You have not taken this conversation: nothing to release.");
        says(&app, EXPERT_ID, "m-7", "release").await;
        step(&app).await;
        assert!(thread_says(&app).await.last().unwrap().contains("released the conversation"));
        says(&app, SECOND_ID, "m-8", "Now I can answer").await;
        step(&app).await;
        assert_eq!(customer_got(&app).await, vec!["Hello, I am your advisor", "Now I can answer"]);
        let metrics = app.metrics_page().await;
        assert!(metrics.contains("icbridge_conversations_taken_total{desk=\"default\"} 1"), "{metrics}");
        assert!(metrics.contains("icbridge_time_to_take_seconds_count{desk=\"default\"} 1"), "{metrics}");
    }
}

db_test! {
    async fn the_cards_take_button_takes_it(db) {
        let app = two_expert_app(db).await;
        open_conversation(&app).await;
        let card = &app.webex_posts().await[0]["attachments"][0]["content"];
        assert_eq!(card["actions"][1], json!({"type": "Action.Submit", "title": "Take", "data": {"action": "take"}}));
        // The press names the person only: icbridge looks up their email.
        Mock::given(method("GET"))
            .and(path(format!("/v1/people/{EXPERT_ID}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": EXPERT_ID, "emails": ["expert@example.com"], "displayName": "Expert"
            })))
            .mount(&app.webex)
            .await;
        press(&app, "action-take", "take").await;
        app.worker.run_once().await.unwrap();
        let assignee = app.stored().the_conversation().await.assignee;
        assert_eq!(assignee.as_deref(), Some("expert@example.com"));
    }
}

db_test! {
    async fn two_experts_taking_at_once_on_two_instances_one_wins(db) {
        let app = two_expert_app(db).await;
        open_conversation(&app).await;
        let other = app.another_instance().await;
        says(&app, EXPERT_ID, "t-1", "take").await;
        says(&app, SECOND_ID, "t-2", "take").await;
        let (first, second) = tokio::join!(app.desk.run_once(), other.desk.run_once());
        assert_eq!(first.unwrap() + second.unwrap(), 2);
        app.worker.run_once().await.unwrap();
        let assignee = app.stored().the_conversation().await.assignee.expect("taken");
        let loser = if assignee == "expert@example.com" { SECOND_EMAIL } else { "expert@example.com" };
        let mut thread = thread_says(&app).await;
        thread.sort();
        assert_eq!(thread.len(), 2, "{thread:#?}");
        assert_eq!(thread[0], format!("This conversation is taken by {assignee}."), "{loser} is told");
        assert!(thread[1].starts_with(&format!("✋ **Taken by {assignee}**")), "{}", thread[1]);
    }
}

//! An expert signed in to the web console.

/// A signed-in expert.
#[derive(Clone, sqlx::FromRow)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub email: String,
    pub display_name: String,
    pub access_token: String,
    pub access_expires_at: i64,
    pub refresh_token: String,
    pub refresh_expires_at: i64,
    pub token_generation: i64,
    pub csrf_token: String,
}

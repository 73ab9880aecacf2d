//! The expert console: Webex login (OAuth with PKCE), server-side sessions with token
//! refresh, and the queue that the page shows beside the Space Widget.

use crate::bridge::BridgeError;
use crate::domain::ConsoleSession;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::domain::clock::Clock;
use crate::domain::Destination;
use crate::store::{Store, StoreError};
use crate::upstream::webex::WebexClient;
use crate::upstream::webex_oauth::{OAuthError, Tokens, WebexOAuthClient};
use crate::upstream::{self, UpstreamError};

pub mod page;

/// A login must come back within this long.
pub const LOGIN_TIMEOUT_MS: i64 = 10 * 60 * 1000;
/// Access tokens are refreshed when they have less than this left (they live ~14 days).
const REFRESH_BEFORE_MS: i64 = 24 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("not signed in")]
    NotSignedIn,
    #[error("this login link is unknown, expired or was already used")]
    BadState,
    #[error("this sign-in was not started in this browser, or took longer than 10 minutes; sign in again")]
    OtherBrowser,
    #[error("Webex login failed: {0}")]
    Denied(String),
    #[error("{0} may not use this console")]
    NotAllowed(String),
    #[error("the request did not come from the console page")]
    Csrf,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A meeting could not be made, or the video service asked to wait.
    #[error(transparent)]
    Bridge(BridgeError),
}

impl From<BridgeError> for ConsoleError {
    fn from(error: BridgeError) -> Self {
        match error {
            BridgeError::Store(error) => ConsoleError::Store(error),
            BridgeError::Upstream(error) => ConsoleError::Upstream(error),
            other => ConsoleError::Bridge(other),
        }
    }
}

impl From<OAuthError> for ConsoleError {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::InvalidGrant => {
                ConsoleError::Denied("the login was refused (invalid_grant)".into())
            }
            OAuthError::Upstream(error) => ConsoleError::Upstream(error),
        }
    }
}

/// What the console is configured with.
pub struct ConsoleSettings {
    pub public_url: Url,
    pub webex_api_url: Url,
    pub allowed: Vec<String>,
    pub widget_base_url: Url,
}

#[derive(Clone)]
pub struct Console {
    store: Store,
    oauth: WebexOAuthClient,
    settings: std::sync::Arc<ConsoleSettings>,
    experts: Destination,
    clock: Clock,
}

impl Console {
    pub fn new(
        store: Store,
        oauth: WebexOAuthClient,
        settings: ConsoleSettings,
        experts: Destination,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            oauth,
            settings: std::sync::Arc::new(settings),
            experts,
            clock,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/console/callback",
            self.settings.public_url.as_str().trim_end_matches('/')
        )
    }

    /// The session cookie is `Secure` when the console is served over https.
    pub fn secure_cookie(&self) -> bool {
        self.settings.public_url.scheme() == "https"
    }

    pub fn widget_base_url(&self) -> &Url {
        &self.settings.widget_base_url
    }

    pub fn experts(&self) -> &Destination {
        &self.experts
    }

    /// Starts a login: a one-time `state` and a PKCE verifier, kept server-side and bound to
    /// the browser that asks: to a random value (`browser`, the one it already holds when it
    /// is well-formed, so that logins started in several tabs all work) of which only the
    /// hash is stored. Returns Webex's authorize URL and the value for the browser to keep.
    pub async fn start_login(
        &self,
        browser: Option<&str>,
    ) -> Result<(String, String), ConsoleError> {
        let browser = browser
            .filter(|value| is_random_token(value))
            .map(str::to_string)
            .unwrap_or_else(random_token);
        let state = random_token();
        let verifier = random_token() + &random_token();
        self.store
            .create_login(&state, &verifier, &hash(&browser), self.now())
            .await?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let authorize_url = self
            .oauth
            .authorize_url(&self.redirect_uri(), &state, &challenge);
        Ok((authorize_url, browser))
    }

    /// Finishes a login: checks the `state`, and that this is the browser that started it
    /// (its value `browser`), exchanges the code, checks who it is. Returns the new
    /// session's cookie value and the session.
    pub async fn finish_login(
        &self,
        code: &str,
        state: &str,
        browser: Option<&str>,
    ) -> Result<(String, ConsoleSession), ConsoleError> {
        let browser = browser.ok_or(ConsoleError::OtherBrowser)?;
        let verifier = self
            .store
            .take_login(state, &hash(browser), self.now() - LOGIN_TIMEOUT_MS)
            .await?
            .ok_or(ConsoleError::BadState)?;
        let tokens = self
            .oauth
            .exchange_code(code, &self.redirect_uri(), &verifier)
            .await?;
        let me = self.as_user(&tokens.access_token).me().await?;
        let email = me
            .emails
            .first()
            .cloned()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !self.is_allowed(&email) {
            tracing::warn!("console login refused by ICB_CONSOLE_ALLOWED");
            return Err(ConsoleError::NotAllowed(email));
        }
        let session_id = random_token();
        let now = self.now();
        let session = ConsoleSession {
            id_hash: hash(&session_id),
            email,
            display_name: me.display_name,
            access_token: tokens.access_token.clone(),
            access_expires_at: now + tokens.expires_in * 1000,
            refresh_token: tokens.refresh_token.clone().unwrap_or_default(),
            refresh_expires_at: now + tokens.refresh_token_expires_in.unwrap_or(90 * 86_400) * 1000,
            token_generation: 1,
            csrf_token: random_token(),
        };
        self.store.create_session(&session, now).await?;
        tracing::info!("expert signed in to the console");
        Ok((session_id, session))
    }

    /// Uses up the `state` of a login that Webex reports as refused, if this browser
    /// started it.
    pub async fn finish_login_refused(
        &self,
        state: &str,
        browser: Option<&str>,
    ) -> Result<(), ConsoleError> {
        if let Some(browser) = browser {
            self.store.take_login(state, &hash(browser), 0).await?;
        }
        Ok(())
    }

    /// The signed-in expert for this cookie value, with tokens refreshed when they are
    /// about to run out. A refused refresh ends the session.
    pub async fn session(&self, cookie: Option<&str>) -> Result<ConsoleSession, ConsoleError> {
        let cookie = cookie.ok_or(ConsoleError::NotSignedIn)?;
        let now = self.now();
        let mut session = self
            .store
            .session(&hash(cookie), now)
            .await?
            .ok_or(ConsoleError::NotSignedIn)?;
        if session.access_expires_at - now > REFRESH_BEFORE_MS {
            return Ok(session);
        }
        match self.oauth.refresh(&session.refresh_token).await {
            Ok(tokens) => {
                apply_refresh(&mut session, &tokens, now);
                self.store.refresh_session(&session).await?;
                tracing::info!("console access token refreshed");
                Ok(session)
            }
            Err(OAuthError::InvalidGrant) => {
                self.store.delete_session(&session.id_hash).await?;
                tracing::info!("console session ended: Webex refused the refresh");
                Err(ConsoleError::NotSignedIn)
            }
            Err(OAuthError::Upstream(error)) if session.access_expires_at > now => {
                // The token still works; try again on the next request.
                tracing::warn!(%error, "console token refresh failed");
                Ok(session)
            }
            Err(OAuthError::Upstream(error)) => Err(error.into()),
        }
    }

    pub async fn logout(&self, session: &ConsoleSession) -> Result<(), ConsoleError> {
        self.store.delete_session(&session.id_hash).await?;
        Ok(())
    }

    /// Checks the page's anti-CSRF token, in constant time.
    pub fn check_csrf(session: &ConsoleSession, given: Option<&str>) -> Result<(), ConsoleError> {
        let given = given.ok_or(ConsoleError::Csrf)?;
        let same =
            Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(session.csrf_token.as_bytes()));
        if bool::from(same) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }

    fn is_allowed(&self, email: &str) -> bool {
        let allowed = &self.settings.allowed;
        allowed.is_empty()
            || allowed.iter().any(|entry| match entry.strip_prefix('@') {
                Some(domain) => email.rsplit_once('@').is_some_and(|(_, d)| d == domain),
                None => entry == email,
            })
    }

    fn as_user(&self, access_token: &str) -> WebexClient {
        WebexClient::new(
            upstream::HttpClient::new(std::time::Duration::from_secs(10)),
            self.settings.webex_api_url.clone(),
            access_token.to_string().into(),
        )
    }
}

/// Keeps the old refresh token when Webex sends none.
fn apply_refresh(session: &mut ConsoleSession, tokens: &Tokens, now: i64) {
    session.access_token = tokens.access_token.clone();
    session.access_expires_at = now + tokens.expires_in * 1000;
    session.token_generation += 1;
    if let Some(refresh_token) = &tokens.refresh_token {
        session.refresh_token = refresh_token.clone();
    }
    if let Some(expires_in) = tokens.refresh_token_expires_in {
        session.refresh_expires_at = now + expires_in * 1000;
    }
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `value` looks like a [`random_token`].
fn is_random_token(value: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(value)
        .is_ok_and(|bytes| bytes.len() == 32)
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

//! Webex OAuth for the expert console: the code exchange and token refreshes, server-side
//! (the client secret never reaches a browser). Both are form-encoded POSTs to
//! `{ICB_WEBEX_API_URL}/access_token`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{endpoint, status_error, HttpClient, Upstream, UpstreamError};

/// What the token endpoint answers (`fixtures/webex-oauth-token.json`).
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    /// Seconds.
    pub expires_in: i64,
    /// Webex may or may not send a new one on refresh.
    pub refresh_token: Option<String>,
    pub refresh_token_expires_in: Option<i64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The grant is no longer valid: the user must log in again.
    #[error("Webex refused the grant (invalid_grant): log in again")]
    InvalidGrant,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

#[derive(Clone)]
pub struct WebexOAuthClient {
    http: HttpClient,
    base_url: Url,
    client_id: String,
    client_secret: SecretString,
}

impl WebexOAuthClient {
    pub fn new(
        http: HttpClient,
        base_url: Url,
        client_id: String,
        client_secret: SecretString,
    ) -> Self {
        Self {
            http,
            base_url,
            client_id,
            client_secret,
        }
    }

    /// Where to send the browser to log in.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        let mut url = Url::parse(&endpoint(&self.base_url, "authorize")).expect("a valid base URL");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "spark:all spark:kms")
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<Tokens, OAuthError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, OAuthError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, OAuthError> {
        let response = self
            .http
            .send(
                Upstream::Webex,
                self.http
                    .post(endpoint(&self.base_url, "access_token"))
                    .form(form),
            )
            .await?;
        if response.status().is_success() {
            return response.json().await.map_err(|e| {
                OAuthError::Upstream(UpstreamError::InvalidResponse {
                    upstream: Upstream::Webex,
                    reason: e.to_string(),
                })
            });
        }
        let status = response.status().as_u16();
        let error = status_error(Upstream::Webex, response).await;
        let invalid_grant = status == 400
            && matches!(&error, UpstreamError::Status { message: Some(m), .. } if m.contains("invalid_grant"));
        if invalid_grant {
            Err(OAuthError::InvalidGrant)
        } else {
            Err(error.into())
        }
    }
}

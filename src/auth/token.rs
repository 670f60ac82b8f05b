//! HS256 tokens: strict verification (only the configured algorithm, `exp` and `sub`
//! required, optional issuer and audience) and minting for tests and scripts.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::domain::error::{Error, Result};
use crate::domain::task::{Actor, DEFAULT_WORKSPACE};

/// Longest accepted `workspace` claim; it names rooms and database rows.
const MAX_WORKSPACE_CHARS: usize = 200;

/// The claims taskwire reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id; becomes `created_by` / `updated_by`.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Display name, shown in presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The workspace the user works in (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Issuer, checked when `JWT_ISSUER` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (a string or an array, RFC 7519 §4.1.3), checked when `JWT_AUDIENCE` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// What `taskwire token` puts in a token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// The user id.
    pub sub: String,
    /// The workspace, if not `default`.
    pub workspace: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Seconds until the token expires.
    pub ttl_seconds: u64,
}

/// Verifies tokens, or lets everyone in as the anonymous actor when no secret is configured.
#[derive(Clone)]
pub struct Authenticator {
    keys: Option<Keys>,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Clone)]
struct Keys {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("required", &self.required())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Authenticator {
    /// From `JWT_SECRET`, `JWT_ISSUER` and `JWT_AUDIENCE`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(
            settings.jwt_secret.as_ref().map(|s| s.expose()),
            settings.jwt_issuer.clone(),
            settings.jwt_audience.clone(),
        )
    }

    /// A verifier for `secret` (none = auth off).
    pub fn new(secret: Option<&str>, issuer: Option<String>, audience: Option<String>) -> Self {
        let keys = secret.filter(|s| !s.is_empty()).map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.algorithms = vec![Algorithm::HS256];
            validation.leeway = 0;
            validation.validate_nbf = true;
            // A configured issuer or audience must be present, not merely right when present.
            let mut required = vec!["exp", "sub"];
            if let Some(iss) = &issuer {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            match &audience {
                Some(aud) => {
                    validation.set_audience(&[aud]);
                    required.push("aud");
                }
                None => validation.validate_aud = false,
            }
            validation.set_required_spec_claims(&required);
            Keys {
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                validation,
            }
        });
        Authenticator {
            keys,
            issuer,
            audience,
        }
    }

    /// Whether callers must present a token.
    pub fn required(&self) -> bool {
        self.keys.is_some()
    }

    /// The actor for a request carrying `token` (or none). With auth off every caller is the
    /// anonymous actor of the default workspace, token or not.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Actor> {
        let Some(keys) = &self.keys else {
            return Ok(Actor::anonymous());
        };
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Unauthorized("a bearer token is required".into()))?;
        let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation)
            .map_err(|e| Error::Unauthorized(format!("invalid token: {}", reason(&e))))?;
        actor_from(data.claims)
    }

    /// Signs a token for `request`; fails when no secret is configured.
    pub fn mint(&self, request: &MintRequest) -> Result<String> {
        let keys = self.keys.as_ref().ok_or_else(|| {
            Error::invalid("jwt_secret", "JWT_SECRET must be set to mint a token")
        })?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: request.sub.clone(),
            exp: now + request.ttl_seconds,
            nbf: None,
            iat: Some(now),
            name: request.name.clone(),
            email: request.email.clone(),
            workspace: request.workspace.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(serde_json::Value::String),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .map_err(Error::internal)
    }
}

fn actor_from(claims: Claims) -> Result<Actor> {
    let sub = claims.sub.trim();
    if sub.is_empty() {
        return Err(Error::Unauthorized(
            "invalid token: `sub` is empty".to_owned(),
        ));
    }
    let workspace = match claims.workspace.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_WORKSPACE.to_owned(),
        Some(w) if w.chars().count() > MAX_WORKSPACE_CHARS || w.chars().any(char::is_control) => {
            return Err(Error::Unauthorized(
                "invalid token: `workspace` is not a usable name".to_owned(),
            ));
        }
        Some(w) => w.to_owned(),
    };
    Ok(Actor {
        workspace,
        user: Some(sub.to_owned()),
        name: claims.name.filter(|n| !n.trim().is_empty()),
        email: claims.email,
    })
}

/// A short reason that helps the token's owner without echoing the token.
fn reason(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not valid yet",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "algorithm not accepted (HS256 only)"
        }
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => "the `iss` claim is required",
            "aud" => "the `aud` claim is required",
            "sub" => "the `sub` claim is required",
            "exp" => "the `exp` claim is required",
            _ => "a required claim is missing",
        },
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(Some("s3cret"), None, None)
    }

    fn mint(sub: &str, workspace: Option<&str>) -> String {
        auth()
            .mint(&MintRequest {
                sub: sub.into(),
                workspace: workspace.map(Into::into),
                name: Some("Alice".into()),
                email: None,
                ttl_seconds: 60,
            })
            .expect("a secret is configured")
    }

    #[test]
    fn a_minted_token_names_user_and_workspace() {
        let actor = auth()
            .authenticate(Some(&mint("alice", Some("acme"))))
            .unwrap();
        assert_eq!(actor.user.as_deref(), Some("alice"));
        assert_eq!(actor.workspace, "acme");
        assert_eq!(actor.name.as_deref(), Some("Alice"));
        let actor = auth().authenticate(Some(&mint("bob", None))).unwrap();
        assert_eq!(actor.workspace, "default");
    }

    #[test]
    fn bad_tokens_are_unauthorized() {
        let other = Authenticator::new(Some("other"), None, None);
        let token = mint("alice", None);
        for bad in [None, Some(""), Some("garbage"), Some("a.b.c")] {
            assert!(matches!(
                auth().authenticate(bad),
                Err(Error::Unauthorized(_))
            ));
        }
        assert!(matches!(
            other.authenticate(Some(&token)),
            Err(Error::Unauthorized(_))
        ));
    }

    #[test]
    fn without_a_secret_everyone_is_anonymous() {
        let open = Authenticator::new(None, None, None);
        assert!(!open.required());
        assert_eq!(
            open.authenticate(Some("garbage")).unwrap(),
            Actor::anonymous()
        );
        assert!(
            open.mint(&MintRequest {
                sub: "a".into(),
                workspace: None,
                name: None,
                email: None,
                ttl_seconds: 1
            })
            .is_err()
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let strict = Authenticator::new(Some("s3cret"), Some("me".into()), Some("app".into()));
        let good = strict
            .mint(&MintRequest {
                sub: "a".into(),
                workspace: None,
                name: None,
                email: None,
                ttl_seconds: 60,
            })
            .unwrap();
        assert!(strict.authenticate(Some(&good)).is_ok());
        let listed = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "a", "exp": jsonwebtoken::get_current_timestamp() + 60,
                "iss": "me", "aud": ["other", "app"]}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(
            strict.authenticate(Some(&listed)).is_ok(),
            "an audience array that names us is accepted"
        );
        assert!(strict.authenticate(Some(&mint("a", None))).is_err());
    }
}

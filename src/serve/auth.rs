//! Who is asking: HTTP Basic (user name + password checked against the user's argon2 hash)
//! or a bearer token (its SHA-256 compared with the user's `token_sha256`), and what each role
//! may do.
//!
//! Argon2 is slow on purpose (tens of milliseconds per check with the recommended
//! parameters), and HTTP Basic sends the password with every request: a password that
//! verified once is remembered for the process as the SHA-256 of `name:password` keyed by
//! name (never the password itself), so only the first request of a client pays for argon2.
//! A changed config needs a restart, which forgets them.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::config::{Role, UserConfig};

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Sites a patrol may watch (empty for other roles).
    pub sites: Vec<String>,
}

/// Why a request is not authenticated (answered 401).
#[derive(Clone, Debug, PartialEq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// A header that is neither `Basic` nor `Bearer`, or not decodable.
    Malformed,
    /// Unknown user, wrong password or unknown token; `claimed` is the user name a Basic
    /// header gave (for the audit row), if any.
    Refused { claimed: Option<String> },
}

impl AuthError {
    /// The user name the request claimed, if any.
    pub fn claimed(&self) -> Option<&str> {
        match self {
            AuthError::Refused { claimed } => claimed.as_deref(),
            _ => None,
        }
    }
}

/// The users of the config, ready to check credentials.
pub struct Users {
    users: Vec<UserConfig>,
    /// User name → SHA-256 of `name:password` that verified against the user's hash.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl Users {
    /// The users of `[serve]` (checked by `ServeConfig::check`).
    pub fn new(users: Vec<UserConfig>) -> Users {
        Users {
            users,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates the `Authorization` header of a request.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let Some(v) = headers.get(AUTHORIZATION) else {
            return Err(AuthError::Missing);
        };
        let v = v.to_str().map_err(|_| AuthError::Malformed)?.trim();
        let (scheme, rest) = v.split_once(' ').ok_or(AuthError::Malformed)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| AuthError::Malformed)?;
            let text = String::from_utf8(raw).map_err(|_| AuthError::Malformed)?;
            let (name, password) = text.split_once(':').ok_or(AuthError::Malformed)?;
            self.basic(name, password)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer(rest)
        } else {
            Err(AuthError::Malformed)
        }
    }

    /// Checks a user name and password against the user's argon2 hash (remembered once verified).
    pub(crate) fn basic(&self, name: &str, password: &str) -> Result<Caller, AuthError> {
        let refused = || AuthError::Refused {
            claimed: Some(name.to_string()),
        };
        let user = self.users.iter().find(|u| u.name == name);
        let Some((user, hash)) = user.and_then(|u| Some((u, u.password_hash.as_deref()?))) else {
            // As slow as a wrong password, so response times do not tell which names exist.
            let _ = Argon2::default().verify_password(password.as_bytes(), dummy_hash());
            return Err(refused());
        };
        let digest: [u8; 32] = Sha256::digest(format!("{name}:{password}").as_bytes()).into();
        let known = self
            .verified
            .lock()
            .map(|m| m.get(name) == Some(&digest))
            .unwrap_or(false);
        if !known {
            let parsed = PasswordHash::new(hash).map_err(|_| refused())?;
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .map_err(|_| refused())?;
            if let Ok(mut m) = self.verified.lock() {
                m.insert(name.to_string(), digest);
            }
        }
        Ok(caller(user))
    }

    /// Authenticates a bearer token given outside the `Authorization` header (`?token=` on
    /// the board's routes), exactly as `Authorization: Bearer <token>` would be.
    pub fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        self.bearer(token)
    }

    /// Finds the user whose `token_sha256` is the SHA-256 of `token`.
    pub(crate) fn bearer(&self, token: &str) -> Result<Caller, AuthError> {
        let digest = hex::encode(Sha256::digest(token.as_bytes()));
        self.users
            .iter()
            .find(|u| {
                u.token_sha256
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(&digest))
            })
            .map(caller)
            .ok_or(AuthError::Refused { claimed: None })
    }
}

/// An argon2 hash (recommended parameters) of a random secret, checked against when the user
/// name is unknown.
fn dummy_hash() -> &'static PasswordHash {
    static H: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        use argon2::PasswordHasher;
        let secret: [u8; 16] = rand::random();
        Argon2::default()
            .hash_password(&secret)
            .expect("argon2 with default parameters")
    })
}

fn caller(u: &UserConfig) -> Caller {
    Caller {
        name: u.name.clone(),
        role: u.role,
        sites: u.sites.clone(),
    }
}

/// The roles allowed on a route template: the alert board (`/board`,
/// `/api/alerts/stream`) patrol, police and admin (a patrol limited to its sites by the
/// handlers); other `/api/…` (plate lookups, lists, exports) police and admin; `/metrics`
/// admin. `None`: a route this server does not have.
pub fn allowed_roles(route: &str) -> Option<&'static [Role]> {
    if is_board_route(route) {
        Some(&[Role::Patrol, Role::Police, Role::Admin])
    } else if route.starts_with("/api/") {
        Some(&[Role::Police, Role::Admin])
    } else if route == "/metrics" {
        Some(&[Role::Admin])
    } else {
        None
    }
}

/// The board's routes, where a token may also come as `?token=` (an `EventSource` cannot send
/// headers).
pub fn is_board_route(route: &str) -> bool {
    route == "/board" || route == "/api/alerts/stream"
}

/// An argon2id PHC string for `secret` (recommended parameters, random salt), for
/// `password_hash`; and the SHA-256 hex of `secret`, for `token_sha256`.
pub fn hash_secret(secret: &str) -> anyhow::Result<(String, String)> {
    use argon2::PasswordHasher;
    let phc = Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    Ok((phc, hex::encode(Sha256::digest(secret.as_bytes()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn basic_and_bearer() {
        let (phc, _) = hash_secret("s3cret").unwrap();
        let (_, tok) = hash_secret("tok-123").unwrap();
        let users = Users::new(vec![
            UserConfig {
                name: "li".into(),
                role: Role::Police,
                password_hash: Some(phc),
                token_sha256: None,
                sites: vec![],
            },
            UserConfig {
                name: "gate".into(),
                role: Role::Patrol,
                password_hash: None,
                token_sha256: Some(tok),
                sites: vec!["C130102001".into()],
            },
        ]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let ok = users
            .authenticate(&header(&format!("Basic {}", b64("li:s3cret"))))
            .unwrap();
        assert_eq!((ok.name.as_str(), ok.role), ("li", Role::Police));
        // Remembered: the second check does not run argon2 and gives the same answer.
        let again = users
            .authenticate(&header(&format!("basic {}", b64("li:s3cret"))))
            .unwrap();
        assert_eq!(again, ok);
        assert_eq!(
            users.authenticate(&header(&format!("Basic {}", b64("li:wrong")))),
            Err(AuthError::Refused {
                claimed: Some("li".into())
            })
        );
        assert_eq!(
            users.authenticate(&header(&format!("Basic {}", b64("nobody:s3cret")))),
            Err(AuthError::Refused {
                claimed: Some("nobody".into())
            })
        );
        assert_eq!(
            users.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
        assert_eq!(
            users.authenticate(&header("Digest x")),
            Err(AuthError::Malformed)
        );
        let p = users.authenticate(&header("Bearer tok-123")).unwrap();
        assert_eq!(p.sites, vec!["C130102001".to_string()]);
        assert_eq!(
            users.authenticate(&header("Bearer tok-124")),
            Err(AuthError::Refused { claimed: None })
        );
        // A token user has no password: Basic with its name is refused.
        assert!(
            users
                .authenticate(&header(&format!("Basic {}", b64("gate:tok-123"))))
                .is_err()
        );
    }
}

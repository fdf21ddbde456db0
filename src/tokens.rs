//! API tokens: the bearer tokens the HTTP server (`recfiles serve`) accepts.
//!
//! A token is a random secret handed out once, at creation; the store keeps only its blake3
//! hash (table `api_tokens`), with a name and a scope. A presented secret is hashed and looked
//! up; the final comparison of the two hashes is constant-time ([`blake3::Hash`]'s equality).

use crate::error::{Error, Result};
use crate::ids::Timestamp;
use crate::storage::{Store, View, dec, enc};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TokenScope {
    /// Reading: GET and HEAD requests.
    Read,
    /// Reading and changing: every request.
    Write,
}

impl TokenScope {
    /// The scope's name, `read` or `write`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(&self, needed: TokenScope) -> bool {
        *self >= needed
    }
}

impl std::str::FromStr for TokenScope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            other => Err(Error::InvalidConfig {
                option: "scope",
                value: crate::error::shorten(other),
                reason: "a token's scope is `read` or `write`",
            }),
        }
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// A short public identifier (the first 16 hex digits of the secret's hash), used to list
    /// and revoke the token.
    pub id: String,
    /// The name given at creation.
    pub name: Option<String>,
    /// What the token allows.
    pub scope: TokenScope,
    /// When it was created.
    pub created: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRow {
    name: Option<String>,
    scope: TokenScope,
    created: Timestamp,
}

/// Prefix of every secret, so a leaked one is recognisable.
const SECRET_PREFIX: &str = "rft_";

fn token_id(hash: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*hash).to_hex()[..16].to_string()
}

fn to_token(hash: &[u8; 32], row: TokenRow) -> ApiToken {
    ApiToken {
        id: token_id(hash),
        name: row.name,
        scope: row.scope,
        created: row.created,
    }
}

fn all_tokens<V: View>(v: &V) -> Result<Vec<([u8; 32], TokenRow)>> {
    let mut out = Vec::new();
    for e in v.api_tokens()?.iter()? {
        let (k, val) = e?;
        out.push((k.value(), dec(val.value(), "api_tokens")?));
    }
    Ok(out)
}

impl Store {
    /// Creates a token and returns it with its secret, which is not stored and cannot be shown
    /// again.
    pub fn create_token(
        &self,
        scope: TokenScope,
        name: Option<&str>,
    ) -> Result<(ApiToken, String)> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let secret = format!(
            "{SECRET_PREFIX}{}",
            blake3::Hash::from_bytes(random).to_hex()
        );
        let hash = *blake3::hash(secret.as_bytes()).as_bytes();
        let row = TokenRow {
            name: name.map(str::to_string),
            scope,
            created: Timestamp::now(),
        };
        self.write(|tx| {
            tx.t.api_tokens
                .write()?
                .insert(hash, enc(&row)?.as_slice())?;
            Ok(())
        })?;
        Ok((to_token(&hash, row), secret))
    }

    /// Every stored token, by id.
    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let mut out: Vec<ApiToken> = self
            .read(|r| crate::storage::with_view!(r, |v| all_tokens(v)))?
            .into_iter()
            .map(|(h, row)| to_token(&h, row))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Whether any token is stored.
    pub fn has_tokens(&self) -> Result<bool> {
        self.read(|r| crate::storage::with_view!(r, |v| Ok(v.api_tokens()?.first()?.is_some())))
    }

    /// Removes the token whose id (or a unique prefix of it, at least 4 digits) is given.
    /// Returns the removed token, or `None` when none or several match.
    pub fn revoke_token(&self, id: &str) -> Result<Option<ApiToken>> {
        if id.len() < 4 {
            return Ok(None);
        }
        self.write(|tx| {
            let mut matching: Vec<_> = all_tokens(&tx.t)?
                .into_iter()
                .filter(|(h, _)| token_id(h).starts_with(id))
                .collect();
            if matching.len() != 1 {
                return Ok(None);
            }
            let Some((hash, row)) = matching.pop() else {
                return Ok(None);
            };
            tx.t.api_tokens.write()?.remove(hash)?;
            Ok(Some(to_token(&hash, row)))
        })
    }

    /// Every stored token with the hash of its secret, for a server that keeps them in memory
    /// and checks each request with [`token_matches`].
    pub fn token_hashes(&self) -> Result<Vec<(blake3::Hash, ApiToken)>> {
        Ok(self
            .read(|r| crate::storage::with_view!(r, |v| all_tokens(v)))?
            .into_iter()
            .map(|(h, row)| (blake3::Hash::from_bytes(h), to_token(&h, row)))
            .collect())
    }

    /// The token a presented secret belongs to, or `None` (see [`token_matches`]).
    pub fn authenticate_token(&self, secret: &str) -> Result<Option<ApiToken>> {
        Ok(token_matches(&self.token_hashes()?, secret).cloned())
    }
}

/// The token among `tokens` whose secret is `secret`. Every stored hash is compared, each in
/// constant time ([`blake3::Hash`]'s equality), so the time taken says nothing about which
/// token, or how much of one, matched.
pub fn token_matches<'a>(
    tokens: &'a [(blake3::Hash, ApiToken)],
    secret: &str,
) -> Option<&'a ApiToken> {
    let presented = blake3::hash(secret.as_bytes());
    let mut found = None;
    for (hash, token) in tokens {
        if *hash == presented {
            found = Some(token);
        }
    }
    found
}

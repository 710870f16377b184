//! Service-account tokens: JWTs signed with the server's key (ES256), with
//! upstream's claims (`pkg/serviceaccount/claims.go`): the issuer, the
//! subject `system:serviceaccount:NS:NAME`, the audiences, issued-at,
//! not-before and expiry, a unique ID, and under `kubernetes.io` the
//! namespace, the service account and the object the token is bound to
//! (a pod, with its node, or a secret, or a node). Signing and checking
//! the signature and times are here; whether the named objects still
//! exist is the authenticator's ([`crate::auth`]).

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The issuer, and the audience tokens are for when none is asked: as
/// kind's and k3s's apiservers are configured.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// An object by name and uid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Its name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    /// The service account's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The service account.
    #[serde(default)]
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to, or its pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// Who the token is for.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// A unique ID.
    pub jti: String,
    /// The service account and what the token is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

/// The user name a service account authenticates as.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// What a token is granted for.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// The service account's namespace, name and uid.
    pub namespace: String,
    /// The service account.
    pub account: Ref,
    /// The audiences.
    pub audiences: Vec<String>,
    /// Seconds from now to expiry.
    pub expiration: i64,
    /// The pod, secret and node it is bound to.
    pub pod: Option<Ref>,
    /// The secret it is bound to.
    pub secret: Option<Ref>,
    /// The node it is bound to (or its pod's).
    pub node: Option<Ref>,
}

/// Signs and checks tokens with one key pair.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

impl Tokens {
    /// Tokens signed with the P-256 key `private_pem` (PKCS #8) and
    /// checked with its `public_pem`.
    pub fn new(private_pem: &str, public_pem: &str) -> Result<Self, String> {
        Ok(Tokens {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes())
                .map_err(|e| format!("the service-account signing key: {e}"))?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes())
                .map_err(|e| format!("the service-account public key: {e}"))?,
        })
    }

    /// A token for `grant`, issued at `now` (Unix seconds).
    pub fn issue(&self, grant: &Grant, now: i64) -> String {
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: user_name(&grant.namespace, &grant.account.name),
            aud: grant.audiences.clone(),
            exp: now + grant.expiration,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: Private {
                namespace: grant.namespace.clone(),
                serviceaccount: grant.account.clone(),
                pod: grant.pod.clone(),
                secret: grant.secret.clone(),
                node: grant.node.clone(),
            },
        };
        encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .expect("claims serialize and an EC key signs")
    }

    /// The claims of `token` if this server signed it, it is within its
    /// times (a minute's leeway, as upstream's) and it is for this
    /// server's audience.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.validate_nbf = true;
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        (claims.sub
            == user_name(
                &claims.kubernetes.namespace,
                &claims.kubernetes.serviceaccount.name,
            ))
        .then_some(claims)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Tokens of a fixed key pair (made with `openssl genpkey -algorithm
    /// EC`; the server's own is made at first start).
    pub(crate) fn tokens() -> Tokens {
        Tokens::new(PRIVATE, PUBLIC).unwrap()
    }

    const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWbPAOdOtLjM8S1n6
+wG5t9hde7NB/ZNsHcyW8yORKTahRANCAAQ+5aHDdS1uQscpu71vQ+u89G6qZ4R+
58fESYNAbDPfmSe26TiHybT2y3KQZ6s8QmRoHR9D4gjtCse+ncEZXBbB
-----END PRIVATE KEY-----
";
    const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPuWhw3UtbkLHKbu9b0PrvPRuqmeE
fufHxEmDQGwz35kntuk4h8m09stykGerPEJkaB0fQ+II7QrHvp3BGVwWwQ==
-----END PUBLIC KEY-----
";

    fn grant(audiences: &[&str], expiration: i64) -> Grant {
        Grant {
            namespace: "default".into(),
            account: Ref {
                name: "builder".into(),
                uid: "u-1".into(),
            },
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration,
            pod: Some(Ref {
                name: "web".into(),
                uid: "p-1".into(),
            }),
            ..Grant::default()
        }
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    #[test]
    fn a_token_carries_upstreams_claims_and_verifies() {
        let tokens = tokens();
        let token = tokens.issue(&grant(&[ISSUER], 3600), now());
        let claims = tokens.verify(&token).expect("verifies");
        assert_eq!(claims.sub, "system:serviceaccount:default:builder");
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.kubernetes.pod.unwrap().uid, "p-1");
        // The claim names on the wire are upstream's.
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            payload["kubernetes.io"]["serviceaccount"]["name"],
            "builder"
        );
        assert_eq!(payload["kubernetes.io"]["namespace"], "default");
        assert!(payload["kubernetes.io"].get("secret").is_none());
    }

    #[test]
    fn expired_foreign_tampered_and_other_audiences_tokens_do_not() {
        let tokens = tokens();
        assert!(tokens
            .verify(&tokens.issue(&grant(&[ISSUER], 3600), now() - 7200))
            .is_none());
        assert!(tokens
            .verify(&tokens.issue(&grant(&["vault"], 3600), now()))
            .is_none());
        let token = tokens.issue(&grant(&[ISSUER], 3600), now());
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = tokens.issue(&grant(&[ISSUER, "x"], 3600), now());
        parts[1] = other.split('.').nth(1).unwrap();
        assert!(tokens.verify(&parts.join(".")).is_none());
        assert!(tokens.verify("0123456789abcdef").is_none());
    }
}

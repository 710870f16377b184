//! The kubelet's service-account tokens for projected volumes: each asked
//! of the apiserver (TokenRequest, bound to the pod) for the source's
//! audience and expiry, kept and asked again once 80 % of its life or 24
//! hours have passed, as upstream's token manager does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

/// A pod's token for one audience and expiry.
type Key = (String, String, i64);

/// When a token issued at `issued` to last `life` is asked for again.
pub fn renew_at(issued: Instant, life: Duration) -> Instant {
    issued + life.mul_f64(0.8).min(Duration::from_secs(24 * 3600))
}

/// The tokens of the node's pods.
pub struct TokenCache {
    client: Client,
    kept: Mutex<HashMap<Key, (Vec<u8>, Instant)>>,
}

impl TokenCache {
    /// A cache asking the apiserver through `client`.
    pub fn new(client: Client) -> Self {
        TokenCache {
            client,
            kept: Mutex::default(),
        }
    }

    /// The pod's token for `audience` (empty: the apiserver's) lasting
    /// `expiration` seconds, asked for when none is kept or it is due.
    pub async fn get(&self, pod: &Pod, audience: &str, expiration: i64) -> Result<Vec<u8>, String> {
        let key = (
            pod.uid().unwrap_or_default(),
            audience.to_owned(),
            expiration,
        );
        if let Some((token, due)) = self.kept.lock().expect("the tokens").get(&key) {
            if Instant::now() < *due {
                return Ok(token.clone());
            }
        }
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: match audience {
                    "" => Vec::new(),
                    audience => vec![audience.to_owned()],
                },
                expiration_seconds: Some(expiration),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod.name_any()),
                    uid: pod.uid(),
                }),
            },
            ..TokenRequest::default()
        };
        let issued = Instant::now();
        let answer = api
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let token = answer
            .status
            .map(|s| s.token.into_bytes())
            .ok_or("failed to fetch token: the answer holds none")?;
        let due = renew_at(issued, Duration::from_secs(expiration.max(0) as u64));
        self.kept
            .lock()
            .expect("the tokens")
            .insert(key, (token.clone(), due));
        Ok(token)
    }

    /// Forgets the tokens of the pod `uid`.
    pub fn forget(&self, uid: &str) {
        self.kept
            .lock()
            .expect("the tokens")
            .retain(|(pod, _, _), _| pod != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_four_fifths_of_their_life_or_a_day() {
        let now = Instant::now();
        assert_eq!(
            renew_at(now, Duration::from_secs(3600)),
            now + Duration::from_secs(2880)
        );
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(renew_at(now, year), now + Duration::from_secs(24 * 3600));
    }
}

//! etcd v3 through its own JSON gateway (`/v3/...` on the client port, in every etcd
//! since 3.4): leases, a create-only put in a transaction, a range by prefix, and
//! deletion. Written by hand rather than with the `etcd-client` crate: these five
//! calls over the HTTP client salve already has cost no protobuf compiler and no gRPC
//! stack in the build. Keys and values travel base64-encoded; 64-bit numbers as
//! decimal strings, as the gateway writes them.

use crate::policy::HttpUrl;
use crate::signal::http::{request_body, Payload, RequestError};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd at {endpoint} is unreachable: {source}")]
    Unreachable {
        endpoint: String,
        source: RequestError,
    },
    #[error("etcd at {endpoint} answered {status} to {call}: {body}")]
    Refused {
        endpoint: String,
        call: &'static str,
        status: u16,
        body: String,
    },
    #[error("etcd's answer to {call} is not what salve reads: {why}")]
    Unreadable { call: &'static str, why: String },
}

/// A key as a range shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub lease: i64,
}

#[derive(Debug, Clone)]
pub struct Etcd {
    /// `http://HOST:PORT`, the client URL.
    endpoint: HttpUrl,
    timeout: Duration,
}

fn number(v: &Value) -> i64 {
    // The gateway writes 64-bit integers as strings and leaves zeros out.
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn decoded(v: &Value) -> String {
    v.as_str()
        .and_then(|s| BASE64.decode(s).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn encoded(text: &str) -> String {
    BASE64.encode(text.as_bytes())
}

/// The key just past every key starting with `prefix`: a range's end.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return BASE64.encode(&bytes);
        }
    }
    // Every byte 0xff: to the end of the keyspace.
    BASE64.encode([0u8])
}

impl Etcd {
    pub fn new(endpoint: HttpUrl, timeout: Duration) -> Self {
        Etcd { endpoint, timeout }
    }

    pub fn endpoint(&self) -> &HttpUrl {
        &self.endpoint
    }

    async fn call(&self, call: &'static str, body: Value) -> Result<Value, EtcdError> {
        let endpoint = self.endpoint.as_str().trim_end_matches('/').to_string();
        let url = HttpUrl::parse(&format!("{endpoint}/v3/{call}")).map_err(|e| {
            EtcdError::Unreadable {
                call,
                why: format!("no URL for it: {e}"),
            }
        })?;
        let payload = Payload {
            content_type: "application/json",
            bytes: body.to_string().into_bytes(),
        };
        let (status, answer) = request_body(Method::POST, &url, Some(payload), self.timeout)
            .await
            .map_err(|source| EtcdError::Unreachable {
                endpoint: endpoint.clone(),
                source,
            })?;
        if !(200..300).contains(&status) {
            return Err(EtcdError::Refused {
                endpoint,
                call,
                status,
                body: String::from_utf8_lossy(&answer).trim().to_string(),
            });
        }
        serde_json::from_slice(&answer).map_err(|e| EtcdError::Unreadable {
            call,
            why: e.to_string(),
        })
    }

    /// A lease of `ttl` (whole seconds, at least 1); its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let answer = self
            .call("lease/grant", json!({ "TTL": ttl.as_secs().max(1) }))
            .await?;
        match number(&answer["ID"]) {
            0 => Err(EtcdError::Unreadable {
                call: "lease/grant",
                why: format!("no lease id in {answer}"),
            }),
            id => Ok(id),
        }
    }

    /// Renews the lease; the seconds it has left, 0 when it had already expired.
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let answer = self
            .call("lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        Ok(number(&answer["result"]["TTL"]))
    }

    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("lease/revoke", json!({ "ID": lease.to_string() }))
            .await
            .map(|_| ())
    }

    /// Puts `key` under `lease` only if no such key exists; whether it did.
    pub async fn create(&self, key: &str, value: &str, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call(
                "kv/txn",
                json!({
                    "compare": [{ "key": encoded(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" }],
                    "success": [{ "request_put": { "key": encoded(key), "value": encoded(value), "lease": lease.to_string() } }]
                }),
            )
            .await?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    /// Every key starting with `prefix`.
    pub async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, EtcdError> {
        let answer = self
            .call(
                "kv/range",
                json!({ "key": encoded(prefix), "range_end": prefix_end(prefix) }),
            )
            .await?;
        #[derive(Deserialize)]
        struct Kv {
            #[serde(default)]
            key: Value,
            #[serde(default)]
            value: Value,
            #[serde(default)]
            create_revision: Value,
            #[serde(default)]
            lease: Value,
        }
        let kvs: Vec<Kv> = match answer.get("kvs") {
            None => Vec::new(),
            Some(kvs) => {
                serde_json::from_value(kvs.clone()).map_err(|e| EtcdError::Unreadable {
                    call: "kv/range",
                    why: e.to_string(),
                })?
            }
        };
        Ok(kvs
            .into_iter()
            .map(|kv| KeyValue {
                key: decoded(&kv.key),
                value: decoded(&kv.value),
                create_revision: number(&kv.create_revision),
                lease: number(&kv.lease),
            })
            .collect())
    }

    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call("kv/deleterange", json!({ "key": encoded(key) }))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_just_past_it() {
        let end = BASE64.decode(prefix_end("/salve/fleet/web/")).unwrap();
        assert_eq!(end, b"/salve/fleet/web0");
        assert_eq!(BASE64.decode(prefix_end("a\u{7f}")).unwrap(), b"a\x80");
    }
}

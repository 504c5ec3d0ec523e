//! A stand-in for the Kubernetes API server at the HTTP request level, for tests (no
//! API server can run on the machines salve is built on). Each expected request is
//! checked (method, path, query, content type, body) and answered as the API server
//! would; a request nobody expected, or one missing at the end, fails the test.

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::Value;
use tokio::task::JoinHandle;

/// Looks at a request's JSON body, panicking at what is wrong with it.
pub type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// One request the client must make, and the answer it gets.
pub struct Expect {
    pub method: &'static str,
    pub path: String,
    /// `key=value` pairs the query must hold (others may be there too).
    pub query: Vec<(&'static str, &'static str)>,
    pub content_type: Option<&'static str>,
    /// Checks the request's JSON body, when there is one to check.
    pub body: Option<BodyCheck>,
    pub status: u16,
    pub answer: Value,
    /// Whether the request must be the API server's dry run (`dryRun=All`, in the
    /// query or a deletion's body); one that is not expected to be must not be.
    pub dry_run: bool,
}

impl Expect {
    pub fn new(method: &'static str, path: impl Into<String>) -> Expect {
        Expect {
            method,
            path: path.into(),
            query: Vec::new(),
            content_type: None,
            body: None,
            status: 200,
            answer: serde_json::json!({}),
            dry_run: false,
        }
    }

    pub fn dry_run(mut self) -> Expect {
        self.dry_run = true;
        self
    }

    pub fn query(mut self, key: &'static str, value: &'static str) -> Expect {
        self.query.push((key, value));
        self
    }

    pub fn content_type(mut self, content_type: &'static str) -> Expect {
        self.content_type = Some(content_type);
        self
    }

    pub fn body(mut self, check: impl Fn(&Value) + Send + 'static) -> Expect {
        self.body = Some(Box::new(check));
        self
    }

    pub fn answer(mut self, status: u16, answer: Value) -> Expect {
        self.status = status;
        self.answer = answer;
        self
    }

    /// Answered with the API server's `Status` for an error: 404 NotFound, 409
    /// Conflict, 429 TooManyRequests, 500 InternalError, 410 Expired, …
    pub fn fails(self, code: u16, reason: &str) -> Expect {
        let answer = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("the server says {reason}"),
            "reason": reason, "code": code
        });
        self.answer(code, answer)
    }
}

/// A client whose requests go to the stand-in, and the task serving `script` in order;
/// await the task to learn that every expected request came.
pub fn serve(script: Vec<Expect>) -> (Client, JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        for (i, expect) in script.into_iter().enumerate() {
            let Some((request, respond)) = handle.next_request().await else {
                panic!("request {i} never came: {} {}", expect.method, expect.path);
            };
            let (parts, body) = request.into_parts();
            let what = format!("request {i} ({} {})", parts.method, parts.uri);
            assert_eq!(parts.method.as_str(), expect.method, "{what}");
            assert_eq!(parts.uri.path(), expect.path, "{what}");
            let query: Vec<(String, String)> = parts
                .uri
                .query()
                .map(|q| {
                    q.split('&')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            for (key, value) in &expect.query {
                assert!(
                    query.iter().any(|(k, v)| k == key && v == value),
                    "{what}: no {key}={value} in the query"
                );
            }
            if let Some(content_type) = expect.content_type {
                let sent = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                assert_eq!(sent, Some(content_type), "{what}: content type");
            }
            let bytes = body.collect_bytes().await.expect("request body");
            let body_dry = serde_json::from_slice::<Value>(&bytes)
                .is_ok_and(|b| b["dryRun"] == serde_json::json!(["All"]));
            let query_dry = query.iter().any(|(k, v)| k == "dryRun" && v == "All");
            assert_eq!(
                query_dry || body_dry,
                expect.dry_run,
                "{what}: whether it is a dry run"
            );
            if let Some(check) = &expect.body {
                let value: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
                check(&value);
            }
            let response = Response::builder()
                .status(expect.status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    serde_json::to_vec(&expect.answer).expect("JSON"),
                ))
                .expect("response");
            respond.send_response(response);
        }
        // The client and its clones are dropped at the end of the test: any request
        // still coming was not in the script.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    });
    (Client::new(service, "default"), server)
}

/// What a routed stand-in answers a request with.
pub enum Reply {
    /// A JSON answer with this status.
    Json(u16, Value),
    /// A watch's stream: these events, one JSON object per line, then the end of the
    /// stream (the client watches again).
    Events(Vec<Value>),
    /// No answer yet: a watch held open, as the API server does until it times out.
    Hold,
}

/// One request as the routed stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

impl Seen {
    pub fn is_watch(&self) -> bool {
        self.query.split('&').any(|p| p == "watch=true")
    }
}

/// A stand-in that answers each request with `route`, in whatever order the client's
/// tasks send them (the operator's watches run at once); every request is sent to
/// `seen` as well, for the test to wait on and check.
pub fn route(
    mut route: impl FnMut(&Seen) -> Reply + Send + 'static,
) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (seen_tx, seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Answers held back, so their watches stay open until the test ends.
        let mut held = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from),
                body: serde_json::from_slice(&bytes).ok(),
            };
            let reply = route(&seen);
            let _ = seen_tx.send(seen);
            let (status, bytes) = match reply {
                Reply::Hold => {
                    held.push(respond);
                    continue;
                }
                Reply::Json(status, value) => {
                    (status, serde_json::to_vec(&value).unwrap_or_default())
                }
                Reply::Events(events) => {
                    let mut lines = Vec::new();
                    for event in events {
                        lines.extend(serde_json::to_vec(&event).unwrap_or_default());
                        lines.push(b'\n');
                    }
                    (200, lines)
                }
            };
            let response = Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes))
                .expect("response");
            respond.send_response(response);
        }
    });
    (Client::new(service, "default"), seen_rx)
}

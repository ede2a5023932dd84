//! The HTTP client the service's integration tests share: bearer auth, JSON in and out, and
//! the response's status, body (JSON, or the text as a JSON string) and headers.
#![allow(dead_code)] // each test file uses a different part

use calops_testkit::TestApp;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(app: &TestApp) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(128)
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    /// One request; no `Authorization` header when `token` is `None`.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut rq = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        if let Some(k) = idem {
            rq = rq.header("Idempotency-Key", k);
        }
        let res = rq.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (StatusCode, Value, HeaderMap) {
        self.raw(method, path, Some(token), body, idem).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.send(Method::GET, path, token, None, None).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.send(Method::POST, path, token, Some(body), None).await;
        (s, v)
    }

    /// POST that must answer 201; its `data`.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> Value {
        let (s, v) = self.post(path, token, body).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path}: {v}");
        v["data"].clone()
    }
}

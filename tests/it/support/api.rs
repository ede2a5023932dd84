//! The HTTP client the service's integration tests share: bearer auth, JSON in and out, and
//! the response's status, body (JSON, or the text as a JSON string) and headers. It keeps
//! every response body, so that a test can prove a secret never came back.
//!
//! It sends the newest `cal-api-version` each route serves (what calops' own clients do);
//! [`Client::version`] sends one of the caller's choice instead, or none.

use calops_testkit::TestApp;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// The service's private listener (`/metrics`).
    pub private_base: String,
    /// Every response body so far (shared by clones).
    bodies: Arc<Mutex<String>>,
    /// `None`: the newest version of each route; `Some(None)`: no header at all.
    version: Option<Option<String>>,
}

impl Client {
    pub fn new(app: &TestApp) -> Client {
        Client {
            private_base: app.private_base.clone(),
            ..Client::at(&app.base)
        }
    }

    /// A client of the service at `base` (`http://127.0.0.1:PORT`), whose private listener is
    /// the same.
    pub fn at(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(128)
                .build()
                .unwrap(),
            base: base.to_string(),
            private_base: base.to_string(),
            bodies: Arc::default(),
            version: None,
        }
    }

    /// This client with `cal-api-version: v` on every request (no header for `None`).
    pub fn version(&self, v: Option<&str>) -> Client {
        Client {
            version: Some(v.map(str::to_string)),
            ..self.clone()
        }
    }

    /// The Prometheus text from the private listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        let res = self
            .http
            .get(format!("{}/metrics", self.private_base))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "GET /metrics on the private listener"
        );
        res.text().await.expect("the metrics text")
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
        let version = match &self.version {
            Some(v) => v.clone(),
            None => calops::service::api::versions::newest_for(method.as_str(), path)
                .map(str::to_string),
        };
        let mut rq = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(v) = version {
            rq = rq.header("cal-api-version", v);
        }
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
        self.bodies.lock().unwrap().push_str(&text);
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }

    /// One request; status and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, v, _) = self.raw(method, path, token, body, None).await;
        (s, v)
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

    /// POST that must answer 201 with `"status": "success"`; its `data`.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> Value {
        let (s, v) = self.post(path, token, body).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path}: {v}");
        assert_eq!(v["status"], "success");
        v["data"].clone()
    }

    /// A request that must succeed (2xx); its `data`.
    pub async fn ok(&self, m: Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(m.clone(), path, Some(key), body).await;
        assert!(s.is_success(), "{m} {path}: {s} {v}");
        v["data"].clone()
    }

    /// A new organization with one host working `start`-`end` every day in `tz`:
    /// (API key, organization id, host id).
    pub async fn org_with_host(
        &self,
        name: &str,
        tz: &str,
        start: &str,
        end: &str,
    ) -> (String, i64, i64) {
        let org = self
            .create(
                "/v2/organizations",
                calops_testkit::BOOTSTRAP_TOKEN,
                serde_json::json!({"name": name}),
            )
            .await;
        let key = org["apiKey"].as_str().unwrap().to_string();
        let org_id = org["id"].as_i64().unwrap();
        let user = self
            .create(
                &format!("/v2/organizations/{org_id}/users"),
                &key,
                serde_json::json!({"name": "Host", "email": format!("host-{org_id}@example.com"), "timeZone": tz}),
            )
            .await;
        let user_id = user["id"].as_i64().unwrap();
        let days = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        self.create(
            "/v2/schedules",
            &key,
            serde_json::json!({"userId": user_id, "name": "Work", "timeZone": tz,
                   "availability": [{"days": days, "startTime": start, "endTime": end}]}),
        )
        .await;
        (key, org_id, user_id)
    }

    /// Did any response so far contain `text`?
    pub fn saw(&self, text: &str) -> bool {
        self.bodies.lock().unwrap().contains(text)
    }
}

/// The `error.code` of an error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

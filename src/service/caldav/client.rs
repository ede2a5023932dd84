//! The CalDAV client behind a small trait ([`CalDav`]): discovery, the state of a calendar
//! (ctag, sync token), REPORT calendar-query with a time range, sync-collection (RFC 6578),
//! calendar-multiget, and PUT/DELETE of one event. [`HttpCalDav`] speaks HTTP with reqwest:
//! basic auth, a timeout on every request, redirects followed by hand (at most 5, keeping the
//! method, same scheme), answers read up to [`MAX_BODY`] bytes.

use super::xml;
use futures::future::BoxFuture;
use jiff::Timestamp;
use std::time::Duration;

/// The largest answer read (a month of a busy calendar is far below this).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// How to reach an account. `Debug` leaves the password out.
#[derive(Clone)]
pub struct Account {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({:?})", self.username)
    }
}

/// What went wrong, as the sync and the outbox need to tell it apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No answer (refused, timed out, reset).
    #[error("calendar server unreachable: {0}")]
    Unreachable(String),
    /// 401/403: the username or password is wrong, or access is denied.
    #[error("calendar server refused the credentials (HTTP {0})")]
    Auth(u16),
    /// Another unexpected status.
    #[error("calendar server answered HTTP {status} to {what}")]
    Status { status: u16, what: String },
    /// An answer that is not what CalDAV promises (not XML, no multistatus, ...).
    #[error("calendar server answered nonsense to {what}: {why}")]
    Nonsense { what: String, why: String },
    /// sync-collection refused the token (RFC 6578 valid-sync-token): sync from scratch.
    #[error("the sync token is no longer valid")]
    TokenInvalid,
}

pub type Result<T> = std::result::Result<T, Error>;

/// A calendar collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarInfo {
    /// Absolute URL.
    pub url: String,
    pub name: String,
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
}

/// One calendar object resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Absolute URL.
    pub url: String,
    pub etag: Option<String>,
    pub data: String,
}

/// What changed since a sync token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Absolute URLs of members added or changed.
    pub changed: Vec<String>,
    /// Absolute URLs of members removed.
    pub removed: Vec<String>,
    pub token: String,
}

/// The CalDAV operations calops uses.
pub trait CalDav: Send + Sync {
    /// The calendars of the account at `server` (a server URL, a principal or a home):
    /// `/.well-known/caldav`, current-user-principal, calendar-home-set, then the calendars
    /// holding events. Returns the home's URL and the calendars.
    fn discover<'a>(
        &'a self,
        server: &'a str,
        acct: &'a Account,
    ) -> BoxFuture<'a, Result<(String, Vec<CalendarInfo>)>>;
    /// The calendar's ctag and sync token now.
    fn state<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
    ) -> BoxFuture<'a, Result<CalendarInfo>>;
    /// Every event overlapping `[from, to)`, with its data.
    fn query<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Object>>>;
    /// Members changed and removed since `token`.
    fn sync<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Changes>>;
    /// The data of `urls` (members of `calendar`).
    fn multiget<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
        urls: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Object>>>;
    /// Store `body` at `url`: created with `If-None-Match: *` (when something is there
    /// already, from an attempt whose answer was lost, it is replaced); returns the new ETag.
    fn put<'a>(
        &'a self,
        url: &'a str,
        acct: &'a Account,
        body: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>>;
    /// Remove `url`; gone already counts as done.
    fn delete<'a>(&'a self, url: &'a str, acct: &'a Account) -> BoxFuture<'a, Result<()>>;
}

/// [`CalDav`] over HTTP.
#[derive(Clone)]
pub struct HttpCalDav {
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    url: String,
    etag: Option<String>,
    body: String,
}

fn method(m: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(m.as_bytes()).expect("a valid method")
}

impl HttpCalDav {
    pub fn new(timeout: Duration) -> HttpCalDav {
        HttpCalDav {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("calops-caldav/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
        }
    }

    /// One request, redirects followed; the answer with its final URL.
    async fn send(
        &self,
        verb: &str,
        url: &str,
        acct: &Account,
        depth: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Answer> {
        let mut url = url::Url::parse(url).map_err(|e| Error::Nonsense {
            what: verb.into(),
            why: format!("{url:?} is not a URL: {e}"),
        })?;
        for _ in 0..6 {
            let mut req = self
                .http
                .request(method(verb), url.clone())
                .basic_auth(&acct.username, Some(&acct.password));
            if let Some(d) = depth {
                req = req.header("Depth", d);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = &body {
                let ct = if verb == "PUT" {
                    "text/calendar; charset=utf-8"
                } else {
                    "application/xml; charset=utf-8"
                };
                req = req.header("Content-Type", ct).body(b.clone());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| Error::Unreachable(without_url(&e)))?;
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 307 | 308) {
                let next = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| Error::Nonsense {
                        what: verb.into(),
                        why: format!("HTTP {status} without a usable Location"),
                    })?;
                if next.scheme() != url.scheme() {
                    return Err(Error::Nonsense {
                        what: verb.into(),
                        why: "a redirect to another scheme".into(),
                    });
                }
                url = next;
                continue;
            }
            if status == 401 || status == 403 {
                return Err(Error::Auth(status));
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_capped(resp).await?;
            return Ok(Answer {
                status,
                url: url.to_string(),
                etag,
                body,
            });
        }
        Err(Error::Nonsense {
            what: verb.into(),
            why: "too many redirects".into(),
        })
    }

    /// A request that must answer 207 with a multistatus.
    async fn multistatus(
        &self,
        verb: &str,
        url: &str,
        acct: &Account,
        depth: &str,
        body: String,
    ) -> Result<(String, xml::Multistatus)> {
        let what = format!("{verb} {url}");
        let a = self
            .send(verb, url, acct, Some(depth), &[], Some(body))
            .await?;
        if a.status != 207 {
            if verb == "REPORT"
                && (a.status == 403 || a.status == 409)
                && a.body.contains("valid-sync-token")
            {
                return Err(Error::TokenInvalid);
            }
            return Err(Error::Status {
                status: a.status,
                what,
            });
        }
        let m = xml::multistatus(&a.body).map_err(|why| Error::Nonsense { what, why })?;
        Ok((a.url, m))
    }

    async fn principal(&self, start: &str, acct: &Account) -> Result<String> {
        let start_url = url::Url::parse(start).map_err(|e| Error::Nonsense {
            what: "discovery".into(),
            why: format!("{start:?} is not a URL: {e}"),
        })?;
        let mut candidates = vec![start.to_string()];
        if let Ok(wk) = start_url.join("/.well-known/caldav") {
            candidates.push(wk.to_string());
        }
        let mut last = None;
        for c in candidates {
            match self
                .multistatus("PROPFIND", &c, acct, "0", xml::propfind_principal())
                .await
            {
                Ok((at, m)) => {
                    if let Some(h) = m
                        .responses
                        .iter()
                        .find_map(|r| r.href_in("current-user-principal"))
                    {
                        return join(&at, &h);
                    }
                }
                Err(e @ (Error::Auth(_) | Error::Unreachable(_))) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::Nonsense {
            what: "discovery".into(),
            why: "no current-user-principal at the URL or /.well-known/caldav".into(),
        }))
    }

    async fn objects(&self, calendar: &str, m: xml::Multistatus) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        for r in m.responses {
            if r.status.is_some_and(|s| s != 200) {
                continue;
            }
            let Some(data) = r.prop("calendar-data").map(xml::Element::text) else {
                continue;
            };
            out.push(Object {
                url: join(calendar, &r.href)?,
                etag: r.text("getetag"),
                data,
            });
        }
        Ok(out)
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url_ref())
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        use std::error::Error as _;
        let mut s = String::new();
        let mut src = self.source();
        while let Some(e) = src {
            s = e.to_string();
            src = e.source();
        }
        s
    }
}

async fn read_capped(resp: reqwest::Response) -> Result<String> {
    use futures::StreamExt;
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Unreachable(without_url(&e)))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Error::Nonsense {
                what: "a read".into(),
                why: format!("an answer larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| Error::Nonsense {
        what: "a read".into(),
        why: "an answer that is not UTF-8".into(),
    })
}

/// `href` (usually a path) against `base`.
pub fn join(base: &str, href: &str) -> Result<String> {
    url::Url::parse(base)
        .and_then(|b| b.join(href.trim()))
        .map(|u| u.to_string())
        .map_err(|e| Error::Nonsense {
            what: "an href".into(),
            why: format!("{href:?}: {e}"),
        })
}

fn calendar_info(base: &str, r: &xml::Response) -> Result<Option<CalendarInfo>> {
    let is_calendar = r
        .prop("resourcetype")
        .is_some_and(|t| t.find("calendar").is_some());
    let events = r.prop("supported-calendar-component-set").is_none_or(|s| {
        s.children
            .iter()
            .any(|c| c.name_attr.as_deref() == Some("VEVENT"))
    });
    if !is_calendar || !events {
        return Ok(None);
    }
    let url = join(base, &r.href)?;
    Ok(Some(CalendarInfo {
        name: r.text("displayname").unwrap_or_else(|| {
            url.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        }),
        url,
        ctag: r.text("getctag"),
        sync_token: r.text("sync-token"),
    }))
}

impl CalDav for HttpCalDav {
    fn discover<'a>(
        &'a self,
        server: &'a str,
        acct: &'a Account,
    ) -> BoxFuture<'a, Result<(String, Vec<CalendarInfo>)>> {
        Box::pin(async move {
            let principal = self.principal(server, acct).await?;
            let (at, m) = self
                .multistatus("PROPFIND", &principal, acct, "0", xml::propfind_home())
                .await?;
            let home = m
                .responses
                .iter()
                .find_map(|r| r.href_in("calendar-home-set"))
                .ok_or_else(|| Error::Nonsense {
                    what: format!("PROPFIND {principal}"),
                    why: "no calendar-home-set".into(),
                })?;
            let home = join(&at, &home)?;
            let (at, m) = self
                .multistatus("PROPFIND", &home, acct, "1", xml::propfind_calendars())
                .await?;
            let mut cals = Vec::new();
            for r in &m.responses {
                if let Some(c) = calendar_info(&at, r)? {
                    cals.push(c);
                }
            }
            Ok((home, cals))
        })
    }

    fn state<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
    ) -> BoxFuture<'a, Result<CalendarInfo>> {
        Box::pin(async move {
            let (at, m) = self
                .multistatus("PROPFIND", calendar, acct, "0", xml::propfind_calendars())
                .await?;
            let r = m.responses.first().ok_or_else(|| Error::Nonsense {
                what: format!("PROPFIND {calendar}"),
                why: "an empty multistatus".into(),
            })?;
            calendar_info(&at, r)?.ok_or_else(|| Error::Nonsense {
                what: format!("PROPFIND {calendar}"),
                why: "not a calendar of events (any more)".into(),
            })
        })
    }

    fn query<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Object>>> {
        Box::pin(async move {
            let (_, m) = self
                .multistatus("REPORT", calendar, acct, "1", xml::calendar_query(from, to))
                .await?;
            self.objects(calendar, m).await
        })
    }

    fn sync<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Changes>> {
        Box::pin(async move {
            let (_, m) = self
                .multistatus("REPORT", calendar, acct, "1", xml::sync_collection(token))
                .await?;
            let token = m.sync_token.clone().ok_or_else(|| Error::Nonsense {
                what: format!("REPORT sync-collection {calendar}"),
                why: "no sync-token in the answer".into(),
            })?;
            let mut ch = Changes {
                token,
                ..Changes::default()
            };
            let me = join(calendar, "")?;
            for r in &m.responses {
                let url = join(calendar, &r.href)?;
                if url == me {
                    continue;
                }
                match r.status {
                    Some(404) => ch.removed.push(url),
                    _ => ch.changed.push(url),
                }
            }
            Ok(ch)
        })
    }

    fn multiget<'a>(
        &'a self,
        calendar: &'a str,
        acct: &'a Account,
        urls: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Object>>> {
        Box::pin(async move {
            if urls.is_empty() {
                return Ok(Vec::new());
            }
            let hrefs: Vec<String> = urls
                .iter()
                .map(|u| {
                    url::Url::parse(u)
                        .map(|p| p.path().to_string())
                        .unwrap_or_else(|_| u.clone())
                })
                .collect();
            let (_, m) = self
                .multistatus("REPORT", calendar, acct, "1", xml::multiget(&hrefs))
                .await?;
            self.objects(calendar, m).await
        })
    }

    fn put<'a>(
        &'a self,
        url: &'a str,
        acct: &'a Account,
        body: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let mut a = self
                .send(
                    "PUT",
                    url,
                    acct,
                    None,
                    &[("If-None-Match", "*")],
                    Some(body.to_string()),
                )
                .await?;
            if a.status == 412 {
                // There already: ours (same UID), from an earlier attempt or a reschedule.
                a = self
                    .send("PUT", url, acct, None, &[], Some(body.to_string()))
                    .await?;
            }
            match a.status {
                200..=299 => Ok(a.etag),
                s => Err(Error::Status {
                    status: s,
                    what: format!("PUT {url}"),
                }),
            }
        })
    }

    fn delete<'a>(&'a self, url: &'a str, acct: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let a = self.send("DELETE", url, acct, None, &[], None).await?;
            match a.status {
                200..=299 | 404 | 410 => Ok(()),
                s => Err(Error::Status {
                    status: s,
                    what: format!("DELETE {url}"),
                }),
            }
        })
    }
}

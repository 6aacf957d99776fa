//! The web console's assets from the real binary: served without credentials under a policy that
//! allows nothing inline and nothing from elsewhere, revalidated by entity tag, and referring to
//! nothing outside agentos. What the console does in a browser is tested in real Chromium by
//! tests/browser/console_test.py (scripts/test).

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::common::{self, Server};

#[tokio::test]
async fn the_console_is_three_embedded_files_under_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure(dir.path(), &[]);
    for (path, media) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = common::http().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with(media), "{path}");
        let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(headers[CACHE_CONTROL], "no-cache");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} refers outside agentos"
        );

        let etag = headers[ETAG].clone();
        let again = common::http()
            .get(server.url(path))
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()[ETAG], etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = common::http()
            .get(server.url(path))
            .header(IF_NONE_MATCH, "\"an-older-build\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }

    let page = common::http()
        .get(server.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<script src="/console/app.js" defer></script>"#));
    assert!(page.contains(r#"href="/console/app.css""#));
    assert!(!page.contains("<script>") && !page.contains("style="), "nothing inline");
    let missing = common::http()
        .get(server.url("/console/other.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

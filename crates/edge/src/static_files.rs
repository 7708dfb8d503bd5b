//! Serves the built client (a static export) from a directory.

use std::path::{Component, Path, PathBuf};

/// Resolves a request path inside `root`, refusing anything that could
/// escape it. `/` and directories map to `index.html`; `/room` may be
/// `room.html` or `room/index.html` (Next.js export layouts).
pub async fn resolve(root: &Path, request_path: &str) -> Option<(PathBuf, &'static str)> {
    let decoded = request_path.split(['?', '#']).next().unwrap_or("/");
    let relative = decoded.trim_start_matches('/');
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => path.push(part),
            _ => return None,
        }
    }
    let mut candidates = vec![path.clone(), path.join("index.html")];
    if !relative.is_empty() {
        candidates.push(path.with_extension("html"));
    }
    for candidate in candidates {
        if tokio::fs::metadata(&candidate)
            .await
            .is_ok_and(|m| m.is_file())
        {
            let mime = content_type(&candidate);
            return Some((candidate, mime));
        }
    }
    None
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_escapes_and_finds_pages() {
        let dir = std::env::temp_dir().join(format!("sb-static-{}", std::process::id()));
        tokio::fs::create_dir_all(dir.join("room"))
            .await
            .expect("mkdir");
        tokio::fs::write(dir.join("index.html"), "home")
            .await
            .expect("write");
        tokio::fs::write(dir.join("room/index.html"), "room")
            .await
            .expect("write");
        tokio::fs::write(dir.join("about.html"), "about")
            .await
            .expect("write");
        assert_eq!(
            resolve(&dir, "/").await.map(|r| r.0),
            Some(dir.join("index.html"))
        );
        assert_eq!(
            resolve(&dir, "/room/?r=x").await.map(|r| r.0),
            Some(dir.join("room/index.html"))
        );
        assert_eq!(
            resolve(&dir, "/about").await.map(|r| r.0),
            Some(dir.join("about.html"))
        );
        assert_eq!(resolve(&dir, "/../etc/passwd").await, None);
        assert_eq!(resolve(&dir, "/missing.js").await, None);
        tokio::fs::remove_dir_all(&dir).await.expect("cleanup");
    }
}

//! Scraping a process's `/metrics` over HTTP and reading series from it.

use std::collections::HashMap;

/// The series of one scrape: `name{labels}` (as exposed) → value.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    series: HashMap<String, f64>,
}

impl Scrape {
    /// GETs `<base_url>/metrics` and parses the text exposition.
    pub async fn of(base_url: &str) -> Self {
        let (status, text) = crate::http::request(base_url, "GET", "/metrics", "").await;
        assert_eq!(status, 200, "/metrics answered {status}: {text}");
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self { text, series }
    }

    /// The value of `series` (`name` or `name{a="b",…}`, labels in the
    /// order exposed); 0 if absent.
    pub fn value(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// Whether a metric family named `name` is exposed (its `# TYPE`).
    pub fn has_family(&self, name: &str) -> bool {
        self.text
            .lines()
            .any(|l| l.starts_with("# TYPE ") && l.split(' ').nth(2) == Some(name))
    }
}

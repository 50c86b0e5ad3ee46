//! Where the data lives, from `--db` (docs/adr/0009): a path is a SQLite
//! file, a `postgres://` or `postgresql://` URL a PostgreSQL database.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// The URL as given (it may carry a password: never print it, print the
    /// location's `Display`).
    Postgres(String),
}

impl Location {
    /// Reads `--db`: a URL by its scheme, anything else a file path (a file
    /// whose name starts with `postgres://` is written `./postgres://…`).
    pub fn parse(db: &str) -> Location {
        let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(db.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(db))
        }
    }

    /// The same, for a `--db` already held as a path.
    pub fn of(path: &Path) -> Location {
        match path.to_str() {
            Some(s) => Location::parse(s),
            None => Location::Sqlite(path.to_owned()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

/// The URL with its password (`user:password@`, `password=` in the query)
/// replaced by `***`.
fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // `user:password@host`: everything from the user's colon to the last
    // `@` (a password may hold `/` or `@`; too much hidden beats too little).
    let rest = match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) if colon < at && !rest[..colon].contains(['/', '?', '@']) => {
            format!("{}:***{}", &rest[..colon], &rest[at..])
        }
        _ => rest.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_sqlite_and_a_url_is_postgres() {
        assert_eq!(Location::parse("./callahead.db"), Location::Sqlite("./callahead.db".into()));
        assert_eq!(Location::parse("/var/lib/c.db"), Location::Sqlite("/var/lib/c.db".into()));
        assert!(Location::parse("postgres://u@h/db").is_postgres());
        assert!(Location::parse("postgresql://u@h:5432/db").is_postgres());
        assert!(Location::parse("POSTGRES://u@h/db").is_postgres());
        assert!(!Location::parse("./postgres://u@h/db").is_postgres(), "a file that looks like a URL");
        assert!(!Location::parse("postgres").is_postgres());
        assert!(Location::of(Path::new("postgres://u@h/db")).is_postgres());
    }

    #[test]
    fn a_password_is_never_printed() {
        let shown = |s: &str| Location::parse(s).to_string();
        assert_eq!(
            shown("postgres://alice:s3cret@db.example:5432/calls"),
            "postgres://alice:***@db.example:5432/calls"
        );
        assert_eq!(shown("postgres://alice@db/calls"), "postgres://alice@db/calls");
        assert_eq!(
            shown("postgres://db/calls?user=a&password=s3cret&x=1"),
            "postgres://db/calls?user=a&password=***&x=1"
        );
        assert_eq!(shown("postgresql://a:p%40ss@h"), "postgresql://a:***@h");
        assert!(!format!("{:?}", Location::parse("postgres://a:s3cret@h/d")).contains("s3cret"));
        assert_eq!(shown("postgres://a:p/ss@h/d"), "postgres://a:***@h/d");
        assert_eq!(shown("./c.db"), "./c.db");
    }
}

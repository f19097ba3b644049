//! Values in URLs: `{{inputs.flink_url}}/jobs/{{item}}?mode={{inputs.mode}}`.
//!
//! The author's text decides the URL's shape; a value fills one part and cannot change it.
//! Reading left to right:
//!
//! - before the URL's path, values are left as they are: a value may be the whole base
//!   (`{{inputs.flink_url}}/jobs`, `http://flink:8081/proxy` included) or, after a written
//!   `scheme://`, the host and port (`https://{{inputs.host}}:{{inputs.port}}/`), which
//!   then cannot hold `/`, `?`, `#`, `@` or `\`;
//! - in the path (after the first `/` the author wrote past the host), a value is one
//!   segment: everything but letters, digits and `-._~` is percent-encoded, so `/`, `?`,
//!   `#` and `%` stay inside it, and a segment that is `.` or `..` is refused (it would
//!   climb);
//! - in the query or the fragment, a value is one component, encoded the same way (`&`,
//!   `=`, `+` and `#` included).
//!
//! `{{{value}}}` is not encoded: the author's text, to be used for a value that is itself
//! a piece of URL the runbook controls.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::Piece;

/// What is encoded in a value: all but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A value that cannot stand where the URL template puts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlValueError {
    /// A host or port value that would change the URL's shape.
    #[error(
        "the URL's host or port value `{value}` contains `{found}`; it can only name a host and port (put a path in the text after it, or pass the whole base URL as one value)"
    )]
    Authority {
        /// The value.
        value: String,
        /// The character that is not allowed there.
        found: char,
    },
    /// A path segment that is `.` or `..` once a value is in it.
    #[error(
        "the URL's path segment `{segment}` is a `.` or `..` once its value is in place: it would climb the path"
    )]
    DotSegment {
        /// The segment, as written into the URL.
        segment: String,
    },
}

/// Where in the URL the text has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Scheme, host and port, not yet ended by a `/`, `?` or `#`.
    Base,
    Path,
    Query,
    Fragment,
}

/// The URL text from a rendered template's pieces, each value encoded for its part.
pub fn build_url(pieces: &[Piece]) -> Result<String, UrlValueError> {
    let mut url = String::new();
    let mut part = Part::Base;
    // Whether the author wrote `scheme://` before any value: the values that follow, up to
    // the path, are the host and port.
    let mut written_scheme = false;
    let mut seen_value = false;
    // Byte ranges of encoded values in the path, to check the segments they end up in.
    let mut path_values = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => {
                let mut rest = text.as_str();
                if part == Part::Base
                    && !seen_value
                    && let Some(at) = rest.find("://")
                {
                    written_scheme = true;
                    url.push_str(&rest[..at + 3]);
                    rest = &rest[at + 3..];
                }
                for c in rest.chars() {
                    part = match (part, c) {
                        (Part::Base, '/') => Part::Path,
                        (Part::Base | Part::Path, '?') => Part::Query,
                        (Part::Base | Part::Path | Part::Query, '#') => Part::Fragment,
                        (part, _) => part,
                    };
                }
                url.push_str(rest);
            }
            Piece::Value(value) => {
                seen_value = true;
                match part {
                    Part::Base => {
                        if written_scheme
                            && let Some(found) = value.chars().find(|c| "/?#@\\".contains(*c))
                        {
                            return Err(UrlValueError::Authority {
                                value: value.clone(),
                                found,
                            });
                        }
                        url.push_str(value);
                    }
                    Part::Path => {
                        let start = url.len();
                        url.extend(utf8_percent_encode(value, COMPONENT));
                        path_values.push(start..url.len());
                    }
                    Part::Query | Part::Fragment => {
                        url.extend(utf8_percent_encode(value, COMPONENT));
                    }
                }
            }
        }
    }
    check_dot_segments(&url, &path_values)?;
    Ok(url)
}

/// URL parsers remove `.` and `..` segments (`%2e` counts as a dot), so a value that
/// makes one would move the request elsewhere.
fn check_dot_segments(url: &str, values: &[std::ops::Range<usize>]) -> Result<(), UrlValueError> {
    for value in values {
        let start = url[..value.start].rfind('/').map_or(0, |at| at + 1);
        let end = url[value.end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |at| value.end + at);
        let segment = &url[start..end];
        let dots = segment.to_ascii_lowercase().replace("%2e", ".");
        if dots == "." || dots == ".." {
            return Err(UrlValueError::DotSegment {
                segment: segment.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(pieces: &[(&str, bool)]) -> Result<String, UrlValueError> {
        let pieces: Vec<Piece> = pieces
            .iter()
            .map(|(s, value)| {
                if *value {
                    Piece::Value((*s).to_owned())
                } else {
                    Piece::Text((*s).to_owned())
                }
            })
            .collect();
        build_url(&pieces)
    }

    #[test]
    fn a_base_value_stays_as_it_is_and_path_and_query_values_are_encoded() {
        assert_eq!(
            url(&[
                ("http://flink:8081/proxy", true),
                ("/jobs/", false),
                ("../../admin?x=1#", true),
                ("/status?mode=", false),
                ("a&b=c #d", true),
            ]),
            Ok("http://flink:8081/proxy/jobs/..%2F..%2Fadmin%3Fx%3D1%23/status?mode=a%26b%3Dc%20%23d".to_owned())
        );
        assert_eq!(
            url(&[
                ("https://", false),
                ("db", true),
                (":", false),
                ("8443", true),
                ("/x/", false),
                ("é", true)
            ]),
            Ok("https://db:8443/x/%C3%A9".to_owned())
        );
    }

    #[test]
    fn values_cannot_reshape_the_host_or_climb_the_path() {
        assert!(matches!(
            url(&[
                ("https://", false),
                ("evil.com/admin?", true),
                ("/jobs", false)
            ]),
            Err(UrlValueError::Authority { found: '/', .. })
        ));
        for dots in ["..", "."] {
            assert!(
                matches!(
                    url(&[("http://h/jobs/", false), (dots, true), ("/x", false)]),
                    Err(UrlValueError::DotSegment { .. })
                ),
                "{dots}"
            );
        }
        assert!(matches!(
            url(&[("http://h/jobs/", false), (".", true), (".", false)]),
            Err(UrlValueError::DotSegment { .. })
        ));
        // An encoded `%` is no dot.
        assert_eq!(
            url(&[("http://h/jobs/", false), ("%2e%2E", true)]),
            Ok("http://h/jobs/%252e%252E".to_owned())
        );
        assert_eq!(
            url(&[("http://h/jobs/", false), ("..", true), ("x", false)]),
            Ok("http://h/jobs/..x".to_owned())
        );
    }
}

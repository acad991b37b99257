//! Open-redirect-safe return paths: where to send a browser back to after a login, a logout
//! or a remember-me sign-in, when the target came from the request itself.

/// The longest return path accepted, in bytes.
pub const MAX_RETURN_PATH_LEN: usize = 2048;

/// `target` when it is a plain path on this site, else `None`.
///
/// A redirect target taken from the request (a `next` or `return_to` parameter, an OAuth
/// `state`, a cookie) must not send the browser to another site. Accepted: a path that starts
/// with exactly one `/`, at most [`MAX_RETURN_PATH_LEN`] bytes of visible ASCII without a
/// backslash. That refuses, among others:
///
/// - `//evil.example/…` and `https://evil.example/…` (another site; any scheme, `javascript:`
///   included, needs a character before the first `/`);
/// - `/\evil.example` (browsers read `\` as `/`, making it `//evil.example`);
/// - tabs, newlines and other control characters, which browsers strip from URLs
///   (`/\t/evil.example` becomes `//evil.example`), and raw CR/LF that would split a header;
/// - spaces and non-ASCII characters (percent-encode them);
/// - the empty string and relative paths (`evil`, `../x`).
///
/// A userinfo (`user@host`) or a host can only appear after a scheme or `//`, so an accepted
/// path never names one; `@`, `%2F` and `//` inside the query or later in the path are only
/// characters of the path.
///
/// ```
/// use tower_token_auth::local_return_path;
///
/// assert_eq!(local_return_path("/orders?id=7#top"), Some("/orders?id=7#top"));
/// assert_eq!(local_return_path("//evil.example/"), None);
/// assert_eq!(local_return_path("/\\evil.example"), None);
/// assert_eq!(local_return_path("https://evil.example/"), None);
/// // The usual fallback:
/// let target = local_return_path("javascript:alert(1)").unwrap_or("/");
/// assert_eq!(target, "/");
/// ```
pub fn local_return_path(target: &str) -> Option<&str> {
    let b = target.as_bytes();
    let ok = b.first() == Some(&b'/')
        && b.get(1) != Some(&b'/')
        && b.len() <= MAX_RETURN_PATH_LEN
        && b.iter().all(|&c| c.is_ascii_graphic() && c != b'\\');
    ok.then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_way_off_the_site() {
        let refused = [
            "",
            "evil.example",
            "../admin",
            "//evil.example",
            "//evil.example/path",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: a=b",
            "/ /evil.example",
            "/\u{0}",
            "/caf\u{e9}",
            "https://evil.example/",
            "http:/evil.example",
            "javascript:alert(1)",
            "data:text/html,<script>",
            " /leading-space",
            "\t/x",
        ];
        for t in refused {
            assert_eq!(local_return_path(t), None, "{t:?} must be refused");
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN));
        assert_eq!(local_return_path(&long), None, "too long");
    }

    #[test]
    fn keeps_paths_of_this_site_unchanged() {
        let kept = [
            "/",
            "/orders",
            "/orders/7?tab=items#top",
            "/a?next=//evil.example",
            "/user@evil.example",
            "/%2F%2Fevil.example",
            "/%0d%0a",
            "/a//b",
        ];
        for t in kept {
            assert_eq!(local_return_path(t), Some(t), "{t:?} must be kept");
        }
        let longest = format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN - 1));
        assert_eq!(local_return_path(&longest), Some(longest.as_str()));
    }
}

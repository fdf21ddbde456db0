//! MIME type guessing from an object key, as Invenio's `guess_mimetype` does.

/// Guesses a key's MIME type from its extension. Compressed files report their compression
/// (`x.csv.gz` → `application/gzip`), unknown ones `application/octet-stream`.
pub fn guess_mimetype(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream".to_string(),
    };
    match ext.as_str() {
        "gz" | "tgz" | "z" => return "application/gzip".to_string(),
        "bz2" => return "application/x-bzip2".to_string(),
        "xz" => return "application/x-xz".to_string(),
        _ => {}
    }
    mime_guess::from_ext(&ext)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::guess_mimetype;

    #[test]
    fn guesses_follow_invenio_examples() {
        assert_eq!(guess_mimetype("test.pdf"), "application/pdf");
        assert_eq!(guess_mimetype("README"), "application/octet-stream");
        assert_eq!(guess_mimetype("test.csv.gz"), "application/gzip");
        assert_eq!(guess_mimetype("dir/hello.txt"), "text/plain");
        assert_eq!(guess_mimetype(".bashrc"), "application/octet-stream");
    }
}

//! MIME type guessing from an object key, as Invenio's `guess_mimetype` does.

/// Guesses a key's MIME type from its extension. Compressed files report their compression
/// (`x.csv.gz` → `application/gzip`), unknown ones `application/octet-stream`.
pub fn guess_mimetype(key: &str) -> String {
    let ext = match extension(key) {
        Some(ext) => ext.to_ascii_lowercase(),
        None => return "application/octet-stream".to_string(),
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

/// The extension of a key's last path segment as written (`None` when the segment has no dot
/// after its first character): the only part of the key the guess depends on.
fn extension(key: &str) -> Option<&str> {
    // Byte searches: `/` and `.` are ASCII, so they never occur inside another character.
    let bytes = key.as_bytes();
    let name = bytes
        .iter()
        .rposition(|&c| c == b'/')
        .map_or(key, |slash| &key[slash + 1..]);
    match name.as_bytes().iter().rposition(|&c| c == b'.') {
        Some(dot) if dot > 0 => Some(&name[dot + 1..]),
        _ => None,
    }
}

/// [`guess_mimetype`] for many keys in a row, remembering the last extension seen: the keys of
/// one bucket mostly share a few extensions, and each guess is then a copy.
#[derive(Debug, Default)]
pub(crate) struct MimeGuesser {
    last: Option<(Option<String>, String)>,
}

impl MimeGuesser {
    /// The same as `guess_mimetype(key)`.
    pub(crate) fn guess(&mut self, key: &str) -> String {
        let ext = extension(key);
        match &self.last {
            Some((seen, mime)) if seen.as_deref() == ext => mime.clone(),
            _ => {
                let mime = guess_mimetype(key);
                self.last = Some((ext.map(str::to_string), mime.clone()));
                mime
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MimeGuesser, guess_mimetype};

    #[test]
    fn the_guesser_answers_as_guess_mimetype() {
        let keys = [
            "a.pdf",
            "b.pdf",
            "c.PDF",
            "d.txt",
            "README",
            "LICENSE",
            "x.csv.gz",
            "y.gz",
            ".bashrc",
            ".profile",
            "dir.d/file",
            "dir/file.txt",
            "e.txt",
            "f.unknownext",
            "g.unknownext",
        ];
        let mut g = MimeGuesser::default();
        for k in keys.iter().chain(keys.iter().rev()) {
            assert_eq!(g.guess(k), guess_mimetype(k), "{k}");
        }
    }

    #[test]
    fn guesses_follow_invenio_examples() {
        assert_eq!(guess_mimetype("test.pdf"), "application/pdf");
        assert_eq!(guess_mimetype("README"), "application/octet-stream");
        assert_eq!(guess_mimetype("test.csv.gz"), "application/gzip");
        assert_eq!(guess_mimetype("dir/hello.txt"), "text/plain");
        assert_eq!(guess_mimetype(".bashrc"), "application/octet-stream");
    }
}

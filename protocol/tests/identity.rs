//! Identity key files: created 0600, refused when others can read them, clear format errors.

use std::os::unix::fs::PermissionsExt;

use compushare_protocol::secure::{Identity, KeyError};

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "compushare-id-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    Identity::generate().unwrap().public()[..8]
        .iter()
        .fold(0u64, |a, &b| a << 8 | u64::from(b))
}

#[test]
fn created_with_mode_0600_and_reloaded_identically() {
    let d = dir();
    let path = d.join("rig.key");
    let (a, created) = Identity::load_or_create(&path).unwrap();
    assert!(created);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (b, created) = Identity::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(a.public(), b.public());
    // Debug never shows the secret.
    let shown = format!("{a:?}");
    assert!(shown.contains(&compushare_protocol::hex::encode(&a.public())));
    let text = std::fs::read_to_string(&path).unwrap();
    let secret_hex = text.lines().nth(1).unwrap();
    assert!(!shown.contains(secret_hex));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn readable_by_others_is_refused() {
    let d = dir();
    let path = d.join("k");
    Identity::generate().unwrap().save_new(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Identity::load(&path).unwrap_err();
    assert!(
        matches!(err, KeyError::Permissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn never_overwrites_and_names_bad_lines() {
    let d = dir();
    let path = d.join("k");
    Identity::generate().unwrap().save_new(&path).unwrap();
    assert!(matches!(
        Identity::generate().unwrap().save_new(&path),
        Err(KeyError::Io { .. })
    ));
    let bad = d.join("bad");
    std::fs::write(&bad, "compushare-identity-v1\nzz\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Identity::load(&bad).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("hex"), "{err}");
    std::fs::write(&bad, "hello\n").unwrap();
    let err = Identity::load(&bad).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_directory_as_key_file_says_so_and_an_os_error_is_printed_once() {
    use std::error::Error as _;
    let dir = std::env::temp_dir();
    let e = Identity::load(&dir).unwrap_err();
    assert!(matches!(e, KeyError::IsDirectory { .. }), "{e}");
    assert!(
        e.to_string().ends_with("is a directory, not a key file"),
        "{e}"
    );
    let e = Identity::load(&dir.join("cs-no-such-dir/key")).unwrap_err();
    let text = e.to_string();
    assert_eq!(text.matches("os error").count(), 1, "{text}");
    assert!(
        e.source().is_none(),
        "the OS error is in the text, not again as a source"
    );
}

//! Loading kernel modules with `finit_module`, in the order the image build computed.
//!
//! There is no modprobe on the image: `image/build.sh` runs `modprobe --show-depends` for
//! each wanted module at build time and writes the resulting load order, one module a line
//! (`path [param=value ...]`, paths relative to the list's directory), to
//! [`LIST`]. Loading one that is already loaded (`EEXIST`) is success; a module whose
//! hardware is absent still loads (drivers probe later), so a failure here is a real one
//! (a missing file, a refused module) and is reported by name without stopping the boot.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the build writes the load order.
pub const LIST: &str = "/lib/modules/load-order";
/// Most lines read from the list.
pub const MAX_MODULES: usize = 512;

/// Why one module did not load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// The list itself could not be read.
    #[error("{path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The module file could not be opened.
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The kernel refused it.
    #[error("{path}: finit_module: {source}")]
    Load {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a load pass did.
#[derive(Debug, Default)]
pub struct Report {
    pub loaded: usize,
    pub already: usize,
    pub failed: Vec<ModuleError>,
    pub took: Duration,
}

/// One line of the list: a module path and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub params: String,
}

/// Parses the list: `path [params...]` per line, `#` comments and blank lines skipped.
pub fn parse_list(text: &str, base: &Path) -> Vec<Entry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(MAX_MODULES)
        .map(|l| {
            let (path, params) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            Entry {
                path: base.join(path),
                params: params.trim().to_owned(),
            }
        })
        .collect()
}

/// Loads every module of the list at `list`, in order.
pub fn load_all(list: &Path) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let text = match std::fs::read_to_string(list) {
        Ok(t) => t,
        Err(source) => {
            report.failed.push(ModuleError::List {
                path: list.to_owned(),
                source,
            });
            return report;
        }
    };
    let base = list.parent().unwrap_or(Path::new("/"));
    for entry in parse_list(&text, base) {
        match load(&entry) {
            Ok(true) => report.loaded += 1,
            Ok(false) => report.already += 1,
            Err(e) => report.failed.push(e),
        }
    }
    report.took = started.elapsed();
    report
}

/// Loads one module; `Ok(false)` when it was already loaded.
pub fn load(entry: &Entry) -> Result<bool, ModuleError> {
    let file = File::open(&entry.path).map_err(|source| ModuleError::Open {
        path: entry.path.clone(),
        source,
    })?;
    let params = std::ffi::CString::new(entry.params.as_str()).unwrap_or_default();
    match rustix::system::finit_module(&file, &params, 0) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(ModuleError::Load {
            path: entry.path.clone(),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines() {
        let l = parse_list(
            "# order\nkernel/a.ko\n\n kernel/usb-storage.ko delay_use=0 quirks=x \n",
            Path::new("/lib/modules"),
        );
        assert_eq!(
            l,
            vec![
                Entry {
                    path: "/lib/modules/kernel/a.ko".into(),
                    params: String::new()
                },
                Entry {
                    path: "/lib/modules/kernel/usb-storage.ko".into(),
                    params: "delay_use=0 quirks=x".into()
                },
            ]
        );
    }

    #[test]
    fn a_missing_file_is_reported_by_name() {
        let r = load_all(Path::new("/nonexistent/load-order"));
        assert_eq!(r.failed.len(), 1);
        assert!(r.failed[0].to_string().contains("/nonexistent/load-order"));
        let e = load(&Entry {
            path: "/nonexistent/x.ko".into(),
            params: String::new(),
        })
        .unwrap_err();
        assert!(matches!(e, ModuleError::Open { .. }));
    }
}

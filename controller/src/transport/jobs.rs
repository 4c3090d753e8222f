//! Job geometries: fetching them from the manager (bounded reassembly, `geometry`), parsing
//! them off the async runtime, and the few parsed jobs kept for the assignments and offers
//! that name them.
//!
//! Bounded: [`MAX_FETCHES`] geometries fetched at once (a further request waits for a new
//! offer or assignment to ask again), [`JOB_CACHE`] parsed jobs kept (the oldest dropped; an
//! assignment that still needs it fetches it again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use compushare_kernels::transport::job::Job;
use compushare_protocol::chunk::Chunk;
use compushare_protocol::limits::MAX_PAYLOAD;
use compushare_protocol::types::Digest;

use super::geometry::Fetch;
use crate::{debug, warn};

/// Parsed geometries kept.
pub const JOB_CACHE: usize = 4;
/// Geometries fetched at once.
pub const MAX_FETCHES: usize = 4;

/// A geometry that parsed, or why not.
pub type Parsed = Result<Arc<Job>, String>;

/// Geometries being fetched, being parsed, and parsed.
#[derive(Debug, Default)]
pub struct Jobs {
    cache: VecDeque<(Digest, Parsed)>,
    fetches: HashMap<Digest, Fetch>,
    parsing: HashSet<Digest>,
}

/// What to do after a request for a geometry.
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    /// Send a `GeometryRequest`.
    Request,
    /// It is parsed, being parsed, or being fetched: nothing to do.
    Underway,
    /// Over a limit: not fetched.
    Refused,
}

impl Jobs {
    /// The parsed job (or its error) for `content`, when cached.
    pub fn get(&self, content: &Digest) -> Option<&Parsed> {
        self.cache
            .iter()
            .find(|(c, _)| c == content)
            .map(|(_, j)| j)
    }

    /// Starts a fetch of `len` bytes unless one is under way or a limit says no.
    pub fn need(&mut self, content: Digest, len: u32, max_bytes: u32) -> Need {
        if self.fetches.contains_key(&content)
            || self.parsing.contains(&content)
            || self.get(&content).is_some()
        {
            return Need::Underway;
        }
        if len > max_bytes || len > MAX_PAYLOAD || self.fetches.len() >= MAX_FETCHES {
            warn!("geometry of {len} bytes not fetched (limit or too many fetches)");
            return Need::Refused;
        }
        self.fetches.insert(content, Fetch::new(content, len));
        debug!("fetching geometry of {len} bytes");
        Need::Request
    }

    /// Takes a chunk; returns the complete fetch, to be parsed off the runtime.
    pub fn chunk(&mut self, c: &Chunk) -> Option<Fetch> {
        let Some(f) = self.fetches.get_mut(&c.content) else {
            debug!("geometry chunk for nothing asked");
            return None;
        };
        match f.accept(c) {
            Err(e) => {
                warn!("geometry chunk ignored: {e}");
                return None;
            }
            Ok(false) => return None,
            Ok(true) => {}
        }
        let f = self.fetches.remove(&c.content)?;
        self.parsing.insert(c.content);
        Some(f)
    }

    /// A parse finished.
    pub fn parsed(&mut self, content: Digest, result: Parsed) {
        self.parsing.remove(&content);
        if let Err(e) = &result {
            warn!("geometry refused: {e}");
        }
        if self.cache.len() >= JOB_CACHE {
            self.cache.pop_front();
        }
        self.cache.push_back((content, result));
    }

    /// The session ended: fetches belong to the session that carried them.
    pub fn session_ended(&mut self) {
        self.fetches.clear();
    }
}

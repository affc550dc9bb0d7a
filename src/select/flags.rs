//! The flags selection's fast paths read before they skip health checks: a
//! tier's "disturbed until" time and the epoch of the reports that put a
//! deployment out, each one atomic on its own cache line.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crossbeam_utils::CachePadded;

/// Until when (ns) some deployment of one (model, priority) may be cooling,
/// ejected or ramping up; see `select::Tier`.
pub(crate) type Disturbed = Arc<CachePadded<AtomicU64>>;

/// Counts the reports that put a deployment out, in every selector version
/// that may share a deployment's state (a selector and every version
/// rebuilt from it, siblings included); advanced with release ordering
/// after the deployment's state is written. A tier's record of which
/// members a pick must test (`Suspects`) holds while this has not moved.
pub(crate) type Epoch = Arc<CachePadded<AtomicU64>>;

//! [`Iter`]: a registry's entries in order.

use std::sync::Arc;

use crate::deployment::Deployment;
use crate::key::ModelKey;

/// Iterator over a registry's `(key, deployment)` pairs, from [`Registry::iter`](crate::Registry::iter).
#[derive(Clone, Debug)]
pub struct Iter<'a>(pub(super) indexmap::map::Iter<'a, Arc<ModelKey>, Arc<Deployment>>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a ModelKey, &'a Deployment);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, d)| (&**k, &**d))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, d)| (&**k, &**d))
    }
}

impl ExactSizeIterator for Iter<'_> {}

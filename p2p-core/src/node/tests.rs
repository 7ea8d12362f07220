//! Unit tests of the node, one behaviour each.
use super::*;

//! Verification of deployed targets (SPEC §6). Only the URL rules live here so far.

pub mod target;

//! Discord: request signature checks (`signature`), interaction parsing
//! (`interaction`), the messages Valine sends (`response`), the REST client (`api`) and
//! command registration (`register`).

pub mod api;
pub mod interaction;
pub mod register;
pub mod response;
pub mod signature;

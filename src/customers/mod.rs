//! What icbridge keeps for and about customers: opting out, the rating after a call, their
//! data on request, and retention.

pub mod data;
pub mod opt_out;
pub mod retention;
pub mod survey;
